// plot.h: line plots written as PNG files, for loss curves and the dev experiments.
// One plot per PNG: white background, a framed plot area with light grid lines, tick marks with round
// tick labels (1-2-5 steps on linear axes, decades on log axes), axis labels, a title and a legend.
// Pixels are drawn here by hand (a 2 px line brush, filled rectangles); the PNG encoder is
// stb_image_write and the text is stb_easy_font's segment font, drawn 2x by filling its quads scaled.
// Flow: a reporting tool at the end of the flow (train.cu writes its curves, dev/ programs their figures);
// no model or training logic.
//
//   PlotSeries s[2] = {{"muon", x, y0, n}, {"adamw", x, y1, n}};
//   PlotSpec spec = {"val loss", "step", "loss", 0, 1, 800, 500};    // logy = 1
//   if (plot_lines("out/loss.png", &spec, s, 2, err)) die("%s", err);
#pragma once
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../common.h"

// every translation unit that includes plot.h gets a private (static) copy of the encoder
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#include "canvas.h"

// One curve: n points (x[i], y[i]). A NaN or inf point (or a non-positive one on a log axis) is skipped
// and breaks the line there.
struct PlotSeries {
    const char* label;  // legend text; NULL gives "series k"
    const double* x;    // (n,)
    const double* y;    // (n,)
    int n;
};

// title, xlabel, ylabel may be NULL (not drawn). width, height in pixels: 0 picks 800 x 500;
// otherwise at least PLOT_MIN_W x PLOT_MIN_H and at most PLOT_MAX_SIDE.
struct PlotSpec {
    const char* title;
    const char* xlabel;
    const char* ylabel;
    int logx, logy;  // 1 = logarithmic axis
    int width, height;
};

#define PLOT_MIN_W 240
#define PLOT_MIN_H 180
#define PLOT_MAX_SIDE 8192
#define PLOT_TEXT_SCALE 2  // stb_easy_font glyphs are ~7 px tall; 2x reads comfortably
#define PLOT_MAX_TICKS 32

// a colour-blind-friendly categorical palette (matplotlib's tab10), cycled past 10 series
static const unsigned char plot_palette[10][3] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},  {148, 103, 189},
    {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
};

static void plot_series_color(int k, unsigned char rgb[3]) {
    memcpy(rgb, plot_palette[k % 10], 3);
}

// ----------------------------------------------------------------------------------------------------
// axes: data range, tick positions, tick labels

struct PlotAxis {
    int log;                              // 1: positions are log10 of the values
    double lo, hi;                        // axis range in position units (log10 for a log axis)
    int nticks;                           // labelled ticks
    double tick[PLOT_MAX_TICKS];          // positions
    char label[PLOT_MAX_TICKS][24];       // their text
    int nminor;                           // unlabelled short ticks (log axes: 2..9 x 10^k)
    double minor[PLOT_MAX_TICKS * 8];
};

// the 1-2-5 step that puts about `target` ticks over `span`
static double plot_nice_step(double span, int target) {
    double raw = span / target, mag = pow(10, floor(log10(raw))), r = raw / mag;
    return (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
}

// a tick value as short text; res is the value resolution to show (the tick step, or the decade)
static void plot_format_tick(double v, double res, char* out) {
    if (fabs(v) < res * 1e-9) {
        snprintf(out, 24, "0");
        return;
    }
    double a = fabs(v);
    if (a >= 1e5 || a < 1e-3) {  // scientific: mantissa with as many digits as the resolution needs
        int e = (int)floor(log10(a) + 1e-9);
        double m = v / pow(10, e);
        int digits = (int)(e - floor(log10(res) + 1e-9));
        digits = digits < 0 ? 0 : digits > 4 ? 4 : digits;
        char mant[16];
        snprintf(mant, sizeof mant, "%.*f", digits, m);
        // drop trailing zeros of the mantissa: 2.50e-4 -> 2.5e-4, 1.0e5 -> 1e5
        if (strchr(mant, '.')) {
            int n = (int)strlen(mant);
            while (n > 0 && mant[n - 1] == '0') mant[--n] = 0;
            if (n > 0 && mant[n - 1] == '.') mant[--n] = 0;
        }
        snprintf(out, 24, "%se%d", mant, e);
        return;
    }
    int decimals = (int)(-floor(log10(res) + 1e-9));
    decimals = decimals < 0 ? 0 : decimals > 6 ? 6 : decimals;
    snprintf(out, 24, "%.*f", decimals, v);
}

static void plot_linear_ticks(PlotAxis* ax, double vlo, double vhi) {
    double step = plot_nice_step(vhi - vlo, 6);
    ax->nticks = 0;
    for (double t = ceil(vlo / step - 1e-9) * step; t <= vhi + step * 1e-9 && ax->nticks < PLOT_MAX_TICKS;
         t += step) {
        double tv = fabs(t) < step * 1e-9 ? 0 : t;
        ax->tick[ax->nticks] = ax->log ? log10(tv) : tv;
        plot_format_tick(tv, step, ax->label[ax->nticks]);
        ax->nticks++;
    }
}

// axis range from the finite data range [dmin, dmax] (already log10 for a log axis), padded 3%
static void plot_axis_make(PlotAxis* ax, int log, double dmin, double dmax) {
    ax->log = log;
    ax->nminor = 0;
    if (dmax - dmin <= 1e-12 * fmax(1, fabs(dmax))) {  // one value: open a window around it
        double pad = log ? 0.5 : (dmax != 0 ? fabs(dmax) * 0.1 : 1);
        dmin -= pad;
        dmax += pad;
    }
    double pad = 0.03 * (dmax - dmin);
    ax->lo = dmin - pad;
    ax->hi = dmax + pad;
    if (!log) {
        plot_linear_ticks(ax, ax->lo, ax->hi);
        return;
    }
    // log axis: decades, thinned to at most ~8 labels; 2 and 5 as well when fewer than three decades show
    int k0 = (int)ceil(ax->lo - 1e-9), k1 = (int)floor(ax->hi + 1e-9);
    int ndec = k1 - k0 + 1, every = ndec > 8 ? (ndec + 7) / 8 : 1;
    ax->nticks = 0;
    if (ndec >= 3) {
        for (int k = k0; k <= k1 && ax->nticks < PLOT_MAX_TICKS; k++) {
            if ((k - k0) % every) continue;
            ax->tick[ax->nticks] = k;
            plot_format_tick(pow(10, k), pow(10, k), ax->label[ax->nticks]);
            ax->nticks++;
        }
        if (every == 1)
            for (int k = k0 - 1; k <= k1; k++)
                for (int m = 2; m <= 9; m++) {
                    double t = k + log10((double)m);
                    if (t > ax->lo && t < ax->hi) ax->minor[ax->nminor++] = t;
                }
        return;
    }
    for (int k = k0 - 1; k <= k1 && ax->nticks < PLOT_MAX_TICKS; k++) {
        const int mult[3] = {1, 2, 5};
        for (int i = 0; i < 3; i++) {
            double t = k + log10((double)mult[i]);
            if (t < ax->lo || t > ax->hi) continue;
            ax->tick[ax->nticks] = t;
            plot_format_tick(mult[i] * pow(10, k), pow(10, k), ax->label[ax->nticks]);
            ax->nticks++;
        }
    }
    if (ax->nticks < 3) plot_linear_ticks(ax, pow(10, ax->lo), pow(10, ax->hi));  // under a factor ~3
}

// position of a data value on an axis (NaN when it cannot be shown: not finite, or <= 0 on a log axis)
static double plot_axis_pos(int log, double v) {
    if (!isfinite(v)) return NAN;
    if (log) return v > 0 ? log10(v) : NAN;
    return v;
}

// Splits text into at most two lines that fit in maxw pixels: at the last space that fits, else mid-word; a
// second line that still does not fit is cut. Returns the number of lines (0 for empty text).
static int plot_wrap(const char* text, int maxw, int scale, char lines[2][PLOT_TEXT_MAX + 1]) {
    char buf[PLOT_TEXT_MAX + 1];
    plot_text_sanitize(text, buf);
    lines[0][0] = lines[1][0] = 0;
    if (!buf[0]) return 0;
    if (plot_text_width(buf, scale) <= maxw) {
        memcpy(lines[0], buf, sizeof buf);
        return 1;
    }
    int n = (int)strlen(buf), cut = 0, space = -1;
    char prefix[PLOT_TEXT_MAX + 1];
    for (int i = 1; i <= n; i++) {  // the longest prefix that fits
        memcpy(prefix, buf, i);
        prefix[i] = 0;
        if (plot_text_width(prefix, scale) > maxw) break;
        cut = i;
        if (i < n && buf[i] == ' ') space = i;
    }
    if (cut < 1) cut = 1;
    int end = space > 0 ? space : cut;
    memcpy(lines[0], buf, end);
    lines[0][end] = 0;
    const char* rest = buf + end;
    while (*rest == ' ') rest++;
    snprintf(lines[1], PLOT_TEXT_MAX + 1, "%s", rest);
    for (int m = (int)strlen(lines[1]); m > 0 && plot_text_width(lines[1], scale) > maxw; m--) lines[1][m - 1] = 0;
    return lines[1][0] ? 2 : 1;
}

// ----------------------------------------------------------------------------------------------------
// the plot

static int plot_lines(const char* png_path, const PlotSpec* spec, const PlotSeries* series, int nseries,
                      char* err) {
    if (!png_path || !png_path[0]) return fail(err, "plot: no output path given");
    if (!spec) return fail(err, "plot %s: no PlotSpec given", png_path);
    int W = spec->width ? spec->width : 800, H = spec->height ? spec->height : 500;
    if (W < PLOT_MIN_W || H < PLOT_MIN_H || W > PLOT_MAX_SIDE || H > PLOT_MAX_SIDE)
        return fail(err, "plot %s: size %d x %d out of range (expected width %d..%d, height %d..%d)",
                    png_path, W, H, PLOT_MIN_W, PLOT_MAX_SIDE, PLOT_MIN_H, PLOT_MAX_SIDE);
    if (!series || nseries <= 0) return fail(err, "plot %s: no series given (nseries %d)", png_path, nseries);
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int s = 0; s < nseries; s++) {
        const PlotSeries* S = &series[s];
        if (S->n < 0) return fail(err, "plot %s: series %d has n = %d (expected >= 0)", png_path, s, S->n);
        if (S->n > 0 && (!S->x || !S->y))
            return fail(err, "plot %s: series %d has n = %d but a NULL x or y array", png_path, s, S->n);
        for (int i = 0; i < S->n; i++) {
            double px = plot_axis_pos(spec->logx, S->x[i]), py = plot_axis_pos(spec->logy, S->y[i]);
            if (isnan(px) || isnan(py)) continue;
            xmin = fmin(xmin, px);
            xmax = fmax(xmax, px);
            ymin = fmin(ymin, py);
            ymax = fmax(ymax, py);
        }
    }
    if (!(xmin <= xmax))
        return fail(err, "plot %s: no point to draw (every series is empty, NaN/inf%s)", png_path,
                    spec->logx || spec->logy ? ", or <= 0 on a log axis" : "");

    PlotAxis* xa = (PlotAxis*)xcalloc(1, sizeof(PlotAxis));
    PlotAxis* ya = (PlotAxis*)xcalloc(1, sizeof(PlotAxis));
    plot_axis_make(xa, spec->logx, xmin, xmax);
    plot_axis_make(ya, spec->logy, ymin, ymax);

    // layout: margins sized from the text that goes in them
    const int S = PLOT_TEXT_SCALE, th = plot_text_height(S), tick_len = 6;
    int ytick_w = 0;
    for (int i = 0; i < ya->nticks; i++) ytick_w = fmax(ytick_w, plot_text_width(ya->label[i], S));
    int last_xw = xa->nticks ? plot_text_width(xa->label[xa->nticks - 1], S) : 0;
    int has_title = spec->title && spec->title[0], has_xl = spec->xlabel && spec->xlabel[0];
    int has_yl = spec->ylabel && spec->ylabel[0];
    int left = 10 + (has_yl ? th + 12 : 0) + ytick_w + 6 + tick_len;
    int right = (int)fmax(24, last_xw / 2 + 8);
    char title[2][PLOT_TEXT_MAX + 1];
    int title_lines = has_title ? plot_wrap(spec->title, W - 16, S, title) : 0;
    int top = title_lines ? 14 + title_lines * (th + 6) - 6 + 14 : 20;
    int bottom = tick_len + 6 + th + (has_xl ? 12 + th : 0) + 12;
    int px0 = left, px1 = W - 1 - right, py0 = top, py1 = H - 1 - bottom;
    if (px1 - px0 < 60 || py1 - py0 < 40) {
        free(xa);
        free(ya);
        return fail(err, "plot %s: size %d x %d leaves no room for the plot area after the labels", png_path,
                    W, H);
    }

    PlotCanvas c;
    c.w = W;
    c.h = H;
    c.rgb = (unsigned char*)xmalloc((size_t)W * H * 3);
    memset(c.rgb, 255, (size_t)W * H * 3);
    plot_clip_all(&c);
    const unsigned char black[3] = {0, 0, 0}, grid[3] = {225, 225, 225}, white[3] = {255, 255, 255};
    const unsigned char frame[3] = {150, 150, 150};

    // position -> pixel
    double sx = (px1 - px0) / (xa->hi - xa->lo), sy = (py1 - py0) / (ya->hi - ya->lo);
#define PLOT_PX(t) (px0 + ((t) - xa->lo) * sx)
#define PLOT_PY(t) (py1 - ((t) - ya->lo) * sy)

    // grid at the labelled ticks
    for (int i = 0; i < xa->nticks; i++) {
        int x = (int)lrint(PLOT_PX(xa->tick[i]));
        plot_fill(&c, x, py0, x + 1, py1, grid);
    }
    for (int i = 0; i < ya->nticks; i++) {
        int y = (int)lrint(PLOT_PY(ya->tick[i]));
        plot_fill(&c, px0, y, px1, y + 1, grid);
    }

    // the series, clipped to the plot area; a run of one finite point gets a small square marker
    c.cx0 = px0 + 1;
    c.cy0 = py0 + 1;
    c.cx1 = px1 - 1;
    c.cy1 = py1 - 1;
    for (int s = 0; s < nseries; s++) {
        unsigned char col[3];
        plot_series_color(s, col);
        const PlotSeries* Sr = &series[s];
        double lx = NAN, ly = NAN;  // previous drawable point, NaN after a break
        for (int i = 0; i < Sr->n; i++) {
            double tx = plot_axis_pos(spec->logx, Sr->x[i]), ty = plot_axis_pos(spec->logy, Sr->y[i]);
            if (isnan(tx) || isnan(ty)) {
                lx = ly = NAN;
                continue;
            }
            double X = PLOT_PX(tx), Y = PLOT_PY(ty);
            if (!isnan(lx)) plot_thick_line(&c, lx, ly, X, Y, 2, col);
            int next_ok = i + 1 < Sr->n && !isnan(plot_axis_pos(spec->logx, Sr->x[i + 1])) &&
                          !isnan(plot_axis_pos(spec->logy, Sr->y[i + 1]));
            if (isnan(lx) && !next_ok) plot_fill(&c, (int)X - 2, (int)Y - 2, (int)X + 3, (int)Y + 3, col);
            lx = X;
            ly = Y;
        }
    }
    plot_clip_all(&c);
#undef PLOT_PX
#undef PLOT_PY

    // frame and ticks (pointing outwards), with labels
    plot_rect(&c, px0, py0, px1, py1, frame);
    for (int i = 0; i < xa->nticks; i++) {
        int x = (int)lrint(px0 + (xa->tick[i] - xa->lo) * sx);
        plot_fill(&c, x, py1 + 1, x + 1, py1 + 1 + tick_len, black);
        int w = plot_text_width(xa->label[i], S);
        plot_text(&c, x - w / 2, py1 + tick_len + 6, xa->label[i], S, 0, black);
    }
    for (int i = 0; i < xa->nminor; i++) {
        int x = (int)lrint(px0 + (xa->minor[i] - xa->lo) * sx);
        plot_fill(&c, x, py1 + 1, x + 1, py1 + 1 + tick_len / 2, black);
    }
    for (int i = 0; i < ya->nticks; i++) {
        int y = (int)lrint(py1 - (ya->tick[i] - ya->lo) * sy);
        plot_fill(&c, px0 - tick_len, y, px0, y + 1, black);
        int w = plot_text_width(ya->label[i], S);
        plot_text(&c, px0 - tick_len - 6 - w, y - th / 2 + 1, ya->label[i], S, 0, black);
    }
    for (int i = 0; i < ya->nminor; i++) {
        int y = (int)lrint(py1 - (ya->minor[i] - ya->lo) * sy);
        plot_fill(&c, px0 - tick_len / 2, y, px0, y + 1, black);
    }

    // title centred above, x label centred below, y label turned along the left edge
    for (int l = 0; l < title_lines; l++) {  // centred on the plot area if it fits there, else on the image
        int w = plot_text_width(title[l], S), x = (px0 + px1) / 2 - w / 2;
        if (x < 8 || x + w > W - 8) x = (W - w) / 2;
        plot_text(&c, x, 14 + l * (th + 6), title[l], S, 0, black);
    }
    if (has_xl) {
        int w = plot_text_width(spec->xlabel, S);
        plot_text(&c, (px0 + px1) / 2 - w / 2, H - 12 - th, spec->xlabel, S, 0, black);
    }
    if (has_yl) {
        int w = plot_text_width(spec->ylabel, S);
        plot_text(&c, 10, (int)fmin(H - 4, (py0 + py1) / 2 + w / 2), spec->ylabel, S, 1, black);
    }

    // legend: the corner of the plot area where the box covers the fewest drawn pixels
    int line_h = th + 8, sw = 28, lw = 0;
    char lab[PLOT_TEXT_MAX + 1];
    for (int s = 0; s < nseries; s++) {
        if (series[s].label) snprintf(lab, sizeof lab, "%s", series[s].label);
        else snprintf(lab, sizeof lab, "series %d", s);
        lw = (int)fmax(lw, plot_text_width(lab, S));
    }
    int bw = 10 + sw + 8 + lw + 10, bh = 8 + nseries * line_h;
    if (bw < px1 - px0 - 16 && bh < py1 - py0 - 16) {
        int best = 0;
        long best_cover = -1;
        for (int corner = 0; corner < 4; corner++) {  // top-right, top-left, bottom-right, bottom-left
            int bx = corner % 2 == 0 ? px1 - 8 - bw : px0 + 8, by = corner < 2 ? py0 + 8 : py1 - 8 - bh;
            long cover = 0;
            for (int y = by; y < by + bh; y++)
                for (int x = bx; x < bx + bw; x++) {
                    const unsigned char* p = c.rgb + ((size_t)y * W + x) * 3;
                    cover += !(p[0] == p[1] && p[1] == p[2]);  // coloured = a series (grid is grey)
                }
            if (best_cover < 0 || cover < best_cover) {
                best_cover = cover;
                best = corner;
            }
        }
        int bx = best % 2 == 0 ? px1 - 8 - bw : px0 + 8, by = best < 2 ? py0 + 8 : py1 - 8 - bh;
        plot_fill(&c, bx, by, bx + bw, by + bh, white);
        plot_rect(&c, bx, by, bx + bw - 1, by + bh - 1, frame);
        for (int s = 0; s < nseries; s++) {
            unsigned char col[3];
            plot_series_color(s, col);
            int ly = by + 4 + s * line_h + line_h / 2;
            plot_fill(&c, bx + 10, ly - 2, bx + 10 + sw, ly + 2, col);
            if (series[s].label) snprintf(lab, sizeof lab, "%s", series[s].label);
            else snprintf(lab, sizeof lab, "series %d", s);
            plot_text(&c, bx + 10 + sw + 8, ly - th / 2 + 1, lab, S, 0, black);
        }
    }

    int ok = stbi_write_png(png_path, W, H, 3, c.rgb, W * 3);
    free(c.rgb);
    free(xa);
    free(ya);
    if (!ok) return fail(err, "plot %s: could not write the PNG (does the directory exist and is it writable?)",
                         png_path);
    return 0;
}
