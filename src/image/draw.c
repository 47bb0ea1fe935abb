/* draw.c — clipped rectangle outlines and text labels (stb_easy_font) on images. */
#include <math.h>
#include <string.h>

/* stb_easy_font.h is a header of static functions; not all are used here
 * and it does not build warning-free on its own. */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wmissing-braces"
#endif
#include <stb_easy_font.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include "image/image_impl.h"

/* Font geometry in stb_easy_font units: glyphs span rows 0..9 (descenders
 * included) and lines advance by 12. A label line is 11 units tall: one unit
 * of padding above, the glyphs, and one below. */
enum { FPI_FONT_LINE = 12, FPI_FONT_LABEL = 11, FPI_FONT_PAD = 1 };
enum { FPI_FONT_VBUF_FLOATS = 1024 }; /* one glyph needs at most 11 quads = 176 floats */

/* Fills the inclusive rectangle [x0,x1]×[y0,y1] with rgb, clipped to the
 * image; an empty or fully outside rectangle draws nothing. */
static void fpi_fill_rect(fp_image *im, long long x0, long long y0, long long x1, long long y1,
                          const float rgb[3])
{
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > im->w - 1) x1 = im->w - 1;
    if (y1 > im->h - 1) y1 = im->h - 1;
    if (x0 > x1 || y0 > y1) return;
    const size_t plane = (size_t)im->w * (size_t)im->h;
    const int nc = im->c < 3 ? im->c : 3;
    for (int k = 0; k < nc; k++) {
        for (long long y = y0; y <= y1; y++) {
            float *row = im->data + (size_t)k * plane + (size_t)y * (size_t)im->w;
            for (long long x = x0; x <= x1; x++) row[x] = rgb[k];
        }
    }
}

void fp_image_draw_box(fp_image *im, int x0, int y0, int x1, int y1, int thickness, const float rgb[3])
{
    if (!fpi_image_valid(im) || !rgb) return;
    if (thickness < 1) thickness = 1;
    long long l = x0 < x1 ? x0 : x1, r = x0 < x1 ? x1 : x0;
    long long t = y0 < y1 ? y0 : y1, b = y0 < y1 ? y1 : y0;
    long long th = thickness;
    /* Bands grow inwards from the given edges, like darknet's draw_box_width. */
    fpi_fill_rect(im, l, t, r, t + th - 1 < b ? t + th - 1 : b, rgb);  /* top */
    fpi_fill_rect(im, l, b - th + 1 > t ? b - th + 1 : t, r, b, rgb);  /* bottom */
    fpi_fill_rect(im, l, t, l + th - 1 < r ? l + th - 1 : r, b, rgb);  /* left */
    fpi_fill_rect(im, r - th + 1 > l ? r - th + 1 : l, t, r, b, rgb);  /* right */
}

/* Pixel coordinate of font-unit coordinate u at scale s from origin o. */
static long long fpi_font_px(float o, float u, float s) { return (long long)floorf(o + u * s + 0.5f); }

void fp_image_draw_label(fp_image *im, int x, int y, const char *text, int height, const float bg[3])
{
    static const float black[3] = {0, 0, 0};
    if (!fpi_image_valid(im) || !text || !bg || height < 1) return;
    if (height > FP_IMAGE_MAX_SIDE) height = FP_IMAGE_MAX_SIDE;
    const float s = (float)height / FPI_FONT_LABEL;

    /* Background: widest line plus one unit of left padding (each glyph's
     * advance already leaves a unit on its right). Characters outside
     * printable ASCII are drawn as '?', since stb_easy_font indexes a table
     * by character. */
    long long lines = 1, units = 0, widest = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            lines++;
            units = 0;
            continue;
        }
        char ch[2] = {(*p >= 32 && *p < 127) ? *p : '?', 0};
        units += stb_easy_font_width(ch);
        if (units > widest) widest = units;
    }
    const float fx = (float)x, fy = (float)y;
    fpi_fill_rect(im, x, y, fpi_font_px(fx, (float)(widest + FPI_FONT_PAD), s) - 1,
                  fpi_font_px(fy, (float)((lines - 1) * FPI_FONT_LINE + FPI_FONT_LABEL), s) - 1, bg);

    /* Glyphs, one at a time so the vertex buffer stays small and fixed; each
     * quad is an axis-aligned rectangle in font units. */
    float pen_x = FPI_FONT_PAD, pen_y = FPI_FONT_PAD;
    float vbuf[FPI_FONT_VBUF_FLOATS];
    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            pen_x = FPI_FONT_PAD;
            pen_y += FPI_FONT_LINE;
            continue;
        }
        char ch[2] = {(*p >= 32 && *p < 127) ? *p : '?', 0};
        if (fpi_font_px(fx, pen_x, s) < im->w && fpi_font_px(fy, pen_y, s) < im->h) {
            int quads = stb_easy_font_print(pen_x, pen_y, ch, NULL, vbuf, (int)sizeof vbuf);
            for (int q = 0; q < quads; q++) {
                const float *v = vbuf + q * 16; /* 4 vertices of x, y, z, colour */
                float ux0 = v[0], uy0 = v[1], ux1 = v[0], uy1 = v[1];
                for (int i = 1; i < 4; i++) {
                    ux0 = fminf(ux0, v[i * 4]);
                    ux1 = fmaxf(ux1, v[i * 4]);
                    uy0 = fminf(uy0, v[i * 4 + 1]);
                    uy1 = fmaxf(uy1, v[i * 4 + 1]);
                }
                long long px0 = fpi_font_px(fx, ux0, s), px1 = fpi_font_px(fx, ux1, s);
                long long py0 = fpi_font_px(fy, uy0, s), py1 = fpi_font_px(fy, uy1, s);
                if (px1 <= px0) px1 = px0 + 1; /* keep thin strokes visible */
                if (py1 <= py0) py1 = py0 + 1;
                fpi_fill_rect(im, px0, py0, px1 - 1, py1 - 1, black);
            }
        }
        pen_x += (float)stb_easy_font_width(ch);
    }
}
