// report/heatmap.h: a table of numbers drawn as coloured cells, written as a PNG: one row per labelled rule, one
// column per labelled setting, each cell's value printed in it. Low values are dark blue, high ones yellow (a
// viridis-like ramp, linear between the finite extremes); a NaN cell (a run that diverged) is grey with "div".
// Flow: a reporting tool beside report/plot.h (same canvas, same PNG encoder); dev/study.h draws the spectral
// family's base·p × lr grid with it.
#pragma once
#include "plot.h"

// viridis at five stops; t in [0, 1]
static void heatmap_color(double t, unsigned char rgb[3]) {
    static const double stops[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    t = fmin(1.0, fmax(0.0, t)) * 4.0;
    int k = (int)t < 4 ? (int)t : 3;
    double f = t - k;
    for (int c = 0; c < 3; c++) rgb[c] = (unsigned char)lrint(stops[k][c] + f * (stops[k + 1][c] - stops[k][c]));
}

// values: (rows, cols) row-major; row_labels (rows), col_labels (cols); title and xlabel may be NULL.
static int plot_heatmap(const char* png_path, const char* title, const char* xlabel, const char* const* row_labels,
                        int rows, const char* const* col_labels, int cols, const double* values, char* err) {
    if (rows <= 0 || cols <= 0) return fail(err, "heatmap %s: no cells (%d x %d)", png_path, rows, cols);
    const int S = PLOT_TEXT_SCALE, th = plot_text_height(S), cell_w = 120, cell_h = 40;
    int label_w = 0;
    for (int r = 0; r < rows; r++) label_w = (int)fmax(label_w, plot_text_width(row_labels[r], S));
    int left = 16 + label_w + 10, top = title ? 20 + th + 16 : 16;
    int W = (int)fmax(left + cols * cell_w + 16, title ? 32 + plot_text_width(title, S) : 0), H = top + rows * cell_h + 10 + th + (xlabel ? 10 + th : 0) + 16;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < rows * cols; i++)
        if (isfinite(values[i])) {
            lo = fmin(lo, values[i]);
            hi = fmax(hi, values[i]);
        }
    PlotCanvas c = {W, H, (unsigned char*)xmalloc((size_t)W * H * 3), 0, 0, 0, 0};
    memset(c.rgb, 255, (size_t)W * H * 3);
    plot_clip_all(&c);
    const unsigned char black[3] = {0, 0, 0}, white[3] = {255, 255, 255}, grey[3] = {170, 170, 170};
    if (title) plot_text(&c, 16, 20, title, S, 0, black);
    for (int r = 0; r < rows; r++) {
        int y = top + r * cell_h;
        plot_text(&c, left - 10 - plot_text_width(row_labels[r], S), y + (cell_h - th) / 2, row_labels[r], S, 0, black);
        for (int k = 0; k < cols; k++) {
            double v = values[r * cols + k];
            unsigned char col[3];
            if (isfinite(v)) heatmap_color(hi > lo ? (v - lo) / (hi - lo) : 0.5, col);
            else memcpy(col, grey, 3);
            int x = left + k * cell_w;
            plot_fill(&c, x, y, x + cell_w - 2, y + cell_h - 2, col);
            char text[32];
            if (isfinite(v)) snprintf(text, sizeof(text), "%.3f", v);
            else snprintf(text, sizeof(text), "div");
            // dark text on the light (high) end of the ramp, white on the dark end
            const unsigned char* ink = isfinite(v) && hi > lo && (v - lo) / (hi - lo) > 0.6 ? black : white;
            plot_text(&c, x + (cell_w - plot_text_width(text, S)) / 2, y + (cell_h - th) / 2, text, S, 0, ink);
        }
    }
    int y = top + rows * cell_h + 10;
    for (int k = 0; k < cols; k++)
        plot_text(&c, left + k * cell_w + (cell_w - plot_text_width(col_labels[k], S)) / 2, y, col_labels[k], S, 0,
                  black);
    if (xlabel) plot_text(&c, left + (cols * cell_w - plot_text_width(xlabel, S)) / 2, y + th + 10, xlabel, S, 0, black);
    int ok = stbi_write_png(png_path, W, H, 3, c.rgb, W * 3);
    free(c.rgb);
    return ok ? 0 : fail(err, "heatmap %s: cannot write the PNG", png_path);
}
