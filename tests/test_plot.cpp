// tests/test_plot.cpp: report/plot.h writes readable PNG line plots. We write into a temporary file, read the
// PNG header for the size, decode it with stb_image to look for the series' colours, and check that bad
// input comes back as one clear error line rather than a crash or an empty image.
#include <doctest/doctest.h>
#include <unistd.h>
#include <string>
#include <vector>
#include "../report/plot.h"
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

static std::string temp_png(const char* name) {
    char buf[256];
    snprintf(buf, sizeof buf, "/tmp/muongpt_test_plot_%d_%s.png", (int)getpid(), name);
    return buf;
}

// width and height from the IHDR chunk: 8-byte signature, chunk length, "IHDR", then two big-endian int32
static int png_size(const char* path, int* w, int* h) {
    unsigned char b[24];
    FILE* f = fopen(path, "rb");
    if (!f) return -1;
    size_t got = fread(b, 1, 24, f);
    fclose(f);
    const unsigned char sig[8] = {137, 'P', 'N', 'G', '\r', '\n', 26, '\n'};
    if (got != 24 || memcmp(b, sig, 8) || memcmp(b + 12, "IHDR", 4)) return -1;
    *w = (b[16] << 24) | (b[17] << 16) | (b[18] << 8) | b[19];
    *h = (b[20] << 24) | (b[21] << 16) | (b[22] << 8) | b[23];
    return 0;
}

static int count_color(const unsigned char* img, int w, int h, const unsigned char col[3]) {
    int n = 0;
    for (int i = 0; i < w * h; i++) n += !memcmp(img + 3 * i, col, 3);
    return n;
}

TEST_CASE("plot_lines writes a PNG of the requested size with each series' colour") {
    const int n = 200;
    std::vector<double> x(n), y0(n), y1(n);
    for (int i = 0; i < n; i++) {
        x[i] = i;
        y0[i] = 3.0 * exp(-i / 50.0) + 0.5;
        y1[i] = 2.0 * exp(-i / 30.0) + 0.4;
    }
    PlotSeries s[2] = {{"muon", x.data(), y0.data(), n}, {"adamw", x.data(), y1.data(), n}};
    PlotSpec spec = {"loss against step", "step", "loss", 0, 1, 640, 400};
    std::string path = temp_png("basic");
    char err[ERR_LEN] = "";
    REQUIRE_MESSAGE(plot_lines(path.c_str(), &spec, s, 2, err) == 0, err);
    int w = 0, h = 0;
    REQUIRE(png_size(path.c_str(), &w, &h) == 0);
    CHECK(w == 640);
    CHECK(h == 400);

    int dw, dh, dc;
    unsigned char* img = stbi_load(path.c_str(), &dw, &dh, &dc, 3);
    REQUIRE(img != NULL);
    CHECK(dw == 640);
    CHECK(dh == 400);
    // each curve spans most of the ~560 px wide plot area with a 2 px line: well over 500 pixels; the
    // legend swatch alone is 28 x 4 = 112, so this needs the line itself
    unsigned char c0[3], c1[3];
    plot_series_color(0, c0);
    plot_series_color(1, c1);
    CHECK(count_color(img, w, h, c0) > 500);
    CHECK(count_color(img, w, h, c1) > 500);
    // the background is white; axes, ticks and text are black
    const unsigned char white[3] = {255, 255, 255}, black[3] = {0, 0, 0};
    CHECK(count_color(img, w, h, white) > w * h / 2);
    CHECK(count_color(img, w, h, black) > 200);
    stbi_image_free(img);
    remove(path.c_str());
}

TEST_CASE("plot_lines draws the title in the top band only when one is given") {
    // the title is centred in rows 14 .. 14 + text height (see plot_lines); without a title that band
    // holds only the grey frame and grid, never black
    double x[3] = {1, 2, 3}, y[3] = {1, 4, 9};
    PlotSeries s = {"y", x, y, 3};
    const unsigned char black[3] = {0, 0, 0};
    int blacks[2];
    for (int with = 0; with < 2; with++) {
        PlotSpec spec = {with ? "A TITLE" : NULL, "x", "y", 0, 0, 400, 300};
        std::string path = temp_png("title");
        char err[ERR_LEN] = "";
        REQUIRE_MESSAGE(plot_lines(path.c_str(), &spec, &s, 1, err) == 0, err);
        int w, h, ch;
        unsigned char* img = stbi_load(path.c_str(), &w, &h, &ch, 3);
        REQUIRE(img != NULL);
        blacks[with] = 0;
        for (int r = 14; r < 14 + plot_text_height(PLOT_TEXT_SCALE); r++)
            blacks[with] += count_color(img + ((size_t)r * w + w / 2 - 60) * 3, 120, 1, black);
        stbi_image_free(img);
        remove(path.c_str());
    }
    CHECK(blacks[0] == 0);
    CHECK(blacks[1] > 50);  // "A TITLE" at 2x: 7 glyphs of a dozen 2x2 blocks each
}

TEST_CASE("plot_lines breaks the line at NaN and skips non-positive points on a log axis") {
    // a flat line y = 1 over x = 0..10 with y[5] = NaN: the row the line is drawn on has two runs of the
    // series colour, not one
    double x[11], y[11];
    for (int i = 0; i < 11; i++) {
        x[i] = i;
        y[i] = 1;
    }
    y[5] = NAN;
    PlotSeries s = {"flat", x, y, 11};
    PlotSpec spec = {"break", "x", "y", 0, 0, 500, 300};
    std::string path = temp_png("nan");
    char err[ERR_LEN] = "";
    REQUIRE_MESSAGE(plot_lines(path.c_str(), &spec, &s, 1, err) == 0, err);
    int w, h, ch;
    unsigned char* img = stbi_load(path.c_str(), &w, &h, &ch, 3);
    REQUIRE(img != NULL);
    unsigned char col[3];
    plot_series_color(0, col);
    int best_row = 0, best = 0;
    for (int r = 0; r < h; r++) {
        int n = count_color(img + (size_t)r * w * 3, w, 1, col);
        if (n > best) best = n, best_row = r;
    }
    int runs = 0;
    for (int xpix = 0, in = 0; xpix < w; xpix++) {
        int on = !memcmp(img + ((size_t)best_row * w + xpix) * 3, col, 3);
        runs += on && !in;
        in = on;
    }
    CHECK(best > 200);
    CHECK(runs == 2);
    stbi_image_free(img);
    remove(path.c_str());

    // log y with zeros, negatives and inf mixed in: the positive points still make a plot
    double ly[6] = {1e-3, 0, -1, 1e-1, INFINITY, 10};
    double lx[6] = {1, 2, 3, 4, 5, 6};
    PlotSeries s2 = {"log", lx, ly, 6};
    PlotSpec spec2 = {"log", "x", "y", 0, 1, 500, 300};
    REQUIRE_MESSAGE(plot_lines(path.c_str(), &spec2, &s2, 1, err) == 0, err);
    img = stbi_load(path.c_str(), &w, &h, &ch, 3);
    REQUIRE(img != NULL);
    CHECK(count_color(img, w, h, col) > 112 + 20);  // more than the legend swatch: the drawn points
    stbi_image_free(img);
    remove(path.c_str());
}

TEST_CASE("plot_lines rejects bad input with one clear line") {
    double x[2] = {0, 1}, y[2] = {0, 1};
    PlotSeries empty[2] = {{"a", x, y, 0}, {"b", x, y, 0}};
    PlotSeries one = {"a", x, y, 2};
    PlotSpec spec = {"t", "x", "y", 0, 0, 400, 300};
    char err[ERR_LEN] = "";
    std::string path = temp_png("bad");

    CHECK(plot_lines(path.c_str(), &spec, empty, 2, err) == -1);
    CHECK(strstr(err, "no point to draw") != NULL);
    CHECK(access(path.c_str(), F_OK) != 0);  // nothing written

    double nan2[2] = {NAN, INFINITY};
    PlotSeries allnan = {"a", x, nan2, 2};
    CHECK(plot_lines(path.c_str(), &spec, &allnan, 1, err) == -1);
    CHECK(strstr(err, "no point to draw") != NULL);

    PlotSpec small = spec;
    small.width = 50;
    CHECK(plot_lines(path.c_str(), &small, &one, 1, err) == -1);
    CHECK(strstr(err, "size 50 x 300 out of range") != NULL);

    CHECK(plot_lines("/nonexistent_dir_muongpt/x.png", &spec, &one, 1, err) == -1);
    CHECK(strstr(err, "/nonexistent_dir_muongpt/x.png: could not write the PNG") != NULL);

    CHECK(plot_lines(path.c_str(), &spec, &one, 0, err) == -1);
    CHECK(strstr(err, "no series given") != NULL);

    PlotSeries nullx = {"a", NULL, y, 2};
    CHECK(plot_lines(path.c_str(), &spec, &nullx, 1, err) == -1);
    CHECK(strstr(err, "NULL x or y") != NULL);

    PlotSeries negn = {"a", x, y, -3};
    CHECK(plot_lines(path.c_str(), &spec, &negn, 1, err) == -1);
    CHECK(strstr(err, "n = -3") != NULL);
}

TEST_CASE("tick steps are 1-2-5 and tick labels are short round numbers") {
    CHECK(plot_nice_step(10, 6) == doctest::Approx(2));     // 10/6 = 1.67 -> 2
    CHECK(plot_nice_step(600, 6) == doctest::Approx(100));  // 100 -> 1 x 100
    CHECK(plot_nice_step(0.03, 6) == doctest::Approx(0.005));
    char s[24];
    plot_format_tick(0.5, 0.1, s);
    CHECK(std::string(s) == "0.5");
    plot_format_tick(1500, 500, s);
    CHECK(std::string(s) == "1500");
    plot_format_tick(1e-5, 1e-5, s);
    CHECK(std::string(s) == "1e-5");
    plot_format_tick(2.5e-4, 5e-5, s);
    CHECK(std::string(s) == "2.5e-4");
    plot_format_tick(200000, 1e5, s);
    CHECK(std::string(s) == "2e5");
    plot_format_tick(1e-17, 0.1, s);  // rounding residue at a zero crossing
    CHECK(std::string(s) == "0");

    // a log axis over 1e-4..1 gets decade ticks with 2..9 minor ticks between
    PlotAxis ax;
    plot_axis_make(&ax, 1, -4, 0);
    REQUIRE(ax.nticks == 5);
    CHECK(std::string(ax.label[0]) == "1e-4");
    CHECK(std::string(ax.label[3]) == "0.1");
    CHECK(std::string(ax.label[4]) == "1");
    CHECK(ax.nminor >= 32);  // 4 decades x 8, plus a few in the 3% padding

    // under three decades (0.025 .. 1.4) the 2s and 5s are labelled too
    plot_axis_make(&ax, 1, log10(0.025), log10(1.4));
    std::string all;
    for (int i = 0; i < ax.nticks; i++) all += std::string(ax.label[i]) + " ";
    CHECK(all == "0.05 0.1 0.2 0.5 1 ");
}

TEST_CASE("a title too wide for the image wraps onto two lines that fit") {
    char lines[2][PLOT_TEXT_MAX + 1];
    CHECK(plot_wrap("short title", 400, 2, lines) == 1);
    CHECK(std::string(lines[0]) == "short title");
    const char* longt = "Three-layer net, spectral rules: singular values of W1 after phase 1, mean over 20 seeds";
    REQUIRE(plot_text_width(longt, 2) > 900);
    CHECK(plot_wrap(longt, 900, 2, lines) == 2);
    CHECK(plot_text_width(lines[0], 2) <= 900);
    CHECK(plot_text_width(lines[1], 2) <= 900);
    CHECK(std::string(lines[0]) + " " + lines[1] == longt);  // split at a space, nothing lost
    CHECK(plot_wrap("", 900, 2, lines) == 0);
}
