// report/canvas.h: the drawing under report/plot.h: an RGB byte image with clipped primitives (pixels, filled
// rectangles, outlines, Liang-Barsky clipped thick lines) and text from stb_easy_font's segment font, its quads
// filled scaled, horizontal or turned 90 degrees.
// Flow: report/plot.h draws its axes, curves and legend with these; the PNG is written there.
#pragma once
#include <math.h>
#include <string.h>
#include <stb/stb_easy_font.h>

// ----------------------------------------------------------------------------------------------------
// canvas: an RGB byte image with clipped drawing primitives

struct PlotCanvas {
    int w, h;
    unsigned char* rgb;  // (h, w, 3)
    // clip rectangle for plot_put, inclusive
    int cx0, cy0, cx1, cy1;
};

static void plot_put(PlotCanvas* c, int x, int y, const unsigned char col[3]) {
    if (x < c->cx0 || x > c->cx1 || y < c->cy0 || y > c->cy1) return;
    unsigned char* p = c->rgb + ((size_t)y * c->w + x) * 3;
    p[0] = col[0];
    p[1] = col[1];
    p[2] = col[2];
}

static void plot_clip_all(PlotCanvas* c) {
    c->cx0 = 0;
    c->cy0 = 0;
    c->cx1 = c->w - 1;
    c->cy1 = c->h - 1;
}

// fills [x0, x1) x [y0, y1)
static void plot_fill(PlotCanvas* c, int x0, int y0, int x1, int y1, const unsigned char col[3]) {
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) plot_put(c, x, y, col);
}

// outline of [x0, x1] x [y0, y1], 1 px
static void plot_rect(PlotCanvas* c, int x0, int y0, int x1, int y1, const unsigned char col[3]) {
    plot_fill(c, x0, y0, x1 + 1, y0 + 1, col);
    plot_fill(c, x0, y1, x1 + 1, y1 + 1, col);
    plot_fill(c, x0, y0, x0 + 1, y1 + 1, col);
    plot_fill(c, x1, y0, x1 + 1, y1 + 1, col);
}

// Liang-Barsky: clips the segment to [x0, x1] x [y0, y1]; returns 0 when nothing is left.
static int plot_clip_segment(double* ax, double* ay, double* bx, double* by, double x0, double y0,
                             double x1, double y1) {
    double dx = *bx - *ax, dy = *by - *ay, t0 = 0, t1 = 1;
    double p[4] = {-dx, dx, -dy, dy};
    double q[4] = {*ax - x0, x1 - *ax, *ay - y0, y1 - *ay};
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0) {
            if (q[i] < 0) return 0;
            continue;
        }
        double t = q[i] / p[i];
        if (p[i] < 0) {
            if (t > t1) return 0;
            if (t > t0) t0 = t;
        } else {
            if (t < t0) return 0;
            if (t < t1) t1 = t;
        }
    }
    double sx = *ax, sy = *ay;
    *ax = sx + t0 * dx;
    *ay = sy + t0 * dy;
    *bx = sx + t1 * dx;
    *by = sy + t1 * dy;
    return 1;
}

// a thick line: a size x size square brush stamped every half pixel along the (clipped) segment
static void plot_thick_line(PlotCanvas* c, double ax, double ay, double bx, double by, int size,
                            const unsigned char col[3]) {
    if (!plot_clip_segment(&ax, &ay, &bx, &by, c->cx0 - 2, c->cy0 - 2, c->cx1 + 2, c->cy1 + 2)) return;
    double len = fmax(fabs(bx - ax), fabs(by - ay));
    int steps = (int)ceil(len * 2) + 1;
    for (int i = 0; i <= steps; i++) {
        double t = (double)i / steps;
        int x = (int)floor(ax + t * (bx - ax) - 0.5 * (size - 1));
        int y = (int)floor(ay + t * (by - ay) - 0.5 * (size - 1));
        for (int dy = 0; dy < size; dy++)
            for (int dx = 0; dx < size; dx++) plot_put(c, x + dx, y + dy, col);
    }
}

// ----------------------------------------------------------------------------------------------------
// text: stb_easy_font builds each glyph from axis-aligned 1-unit quads; we fill them scaled by `scale`.
// A 90 degree rotation maps axis-aligned quads to axis-aligned quads, so vertical text is as easy.

#define PLOT_TEXT_MAX 160  // characters drawn per string; longer text is cut

// copies text into buf (printable ASCII only: stb_easy_font indexes a table by c - 32)
static void plot_text_sanitize(const char* text, char* buf) {
    int n = 0;
    for (; text && text[n] && n < PLOT_TEXT_MAX; n++)
        buf[n] = (text[n] >= 32 && text[n] <= 126) ? text[n] : '?';
    buf[n] = 0;
}

static int plot_text_width(const char* text, int scale) {
    char buf[PLOT_TEXT_MAX + 1];
    plot_text_sanitize(text, buf);
    return stb_easy_font_width(buf) * scale;
}

// glyph box height: caps and descenders fit in 10 font units (stb_easy_font's line pitch is 12)
static int plot_text_height(int scale) { return 10 * scale; }

// draws text with its top-left corner at (x, y); vertical = 1 turns it 90 degrees counter-clockwise,
// reading bottom to top, with (x, y) then the bottom-left corner of the turned text.
static void plot_text(PlotCanvas* c, int x, int y, const char* text, int scale, int vertical,
                      const unsigned char col[3]) {
    char buf[PLOT_TEXT_MAX + 1];
    plot_text_sanitize(text, buf);
    static const int vbuf_bytes = 270 * 2 * PLOT_TEXT_MAX;  // stb's estimate: ~270 bytes per character
    float* v = (float*)xmalloc(vbuf_bytes);
    int nquads = stb_easy_font_print(0, 0, buf, NULL, v, vbuf_bytes);
    for (int q = 0; q < nquads; q++) {
        const float* p = v + q * 16;  // 4 vertices of (x, y, z, rgba): 4 floats each
        float u0 = p[0], u1 = p[0], w0 = p[1], w1 = p[1];
        for (int k = 1; k < 4; k++) {
            u0 = fminf(u0, p[4 * k]);
            u1 = fmaxf(u1, p[4 * k]);
            w0 = fminf(w0, p[4 * k + 1]);
            w1 = fmaxf(w1, p[4 * k + 1]);
        }
        int a0 = (int)lrintf(u0 * scale), a1 = (int)lrintf(u1 * scale);
        int b0 = (int)lrintf(w0 * scale), b1 = (int)lrintf(w1 * scale);
        if (!vertical)
            plot_fill(c, x + a0, y + b0, x + a1, y + b1, col);
        else  // text (u, w) -> canvas (x + w, y - u)
            plot_fill(c, x + b0, y - a1, x + b1, y - a0, col);
    }
    free(v);
}
