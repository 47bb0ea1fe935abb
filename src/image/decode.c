/*
 * decode.c — strict, bounded image decoding into float planar RGB.
 *
 * JPEG goes through libjpeg-turbo with the settings OpenCV's imread uses
 * (islow IDCT, fancy upsampling, CMYK converted with OpenCV's formula, EXIF
 * orientation applied), because darknet's Debian build loads images with
 * imread. PNG and BMP go through stb_image (Debian's compiled libstb), with
 * PNG eXIf orientation applied; 16-bit BMP, PPM and PGM through small
 * decoders here that copy OpenCV's conversions. All of it was checked float
 * for float against libdarknet's load_image_color(). Every decoder checks
 * the declared size before allocating, and truncated files are refused.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE and size_t first */
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <stb_image.h>

#include "common/common.h"
#include "image/image_impl.h"

enum { FPI_JPEG_MAX_SCANS = 500 };                 /* progressive scans (libjpeg-turbo's advice) */
enum { FPI_JPEG_MAX_MEMORY = 1024 * 1024 * 1024 }; /* libjpeg working memory, bytes */

/* Byte v as darknet's mat_to_image() stores it: v/255. (rounded to float). */
static inline float fpi_unit(unsigned v) { return (float)(v / 255.0); }

/* Checks declared dimensions before anything is allocated: FP_ECORRUPT for a
 * zero side, FP_ETOOBIG past the limits, naming the file. */
static fp_status fpi_check_declared(const char *name, const char *fmt, long long w, long long h)
{
    if (w < 1 || h < 1)
        return fpi_error(FP_ECORRUPT, "%s: %s declares an empty image (%lldx%lld)", name, fmt, w, h);
    if (w > FP_IMAGE_MAX_SIDE || h > FP_IMAGE_MAX_SIDE || w * h > FP_IMAGE_MAX_PIXELS)
        return fpi_error(FP_ETOOBIG,
                         "%s: %s of %lldx%lld pixels exceeds the limit (%d pixels per side, %d "
                         "pixels in all)",
                         name, fmt, w, h, FP_IMAGE_MAX_SIDE, FP_IMAGE_MAX_PIXELS);
    return FP_OK;
}

/* Maps a source pixel (x, y) of a w×h decode to its index in the oriented
 * output plane: index = base + x*sx + y*sy. EXIF orientations 1..8, applied
 * the way OpenCV's ExifTransform does (5..8 transpose, so w and h swap). */
typedef struct fpi_orient {
    ptrdiff_t base; /* index of source pixel (0, 0) */
    ptrdiff_t sx;   /* index step per source column */
    ptrdiff_t sy;   /* index step per source row */
    int out_w;      /* oriented width */
    int out_h;      /* oriented height */
} fpi_orient;

/* Fills the mapping of EXIF orientation o (anything outside 2..8 is 1). */
static fpi_orient fpi_orient_make(int o, int w, int h)
{
    ptrdiff_t W = w, H = h;
    fpi_orient m = {0, 1, W, w, h};
    switch (o) {
    case 2: m = (fpi_orient){W - 1, -1, W, w, h}; break;                 /* mirror */
    case 3: m = (fpi_orient){(H - 1) * W + W - 1, -1, -W, w, h}; break; /* rotate 180 */
    case 4: m = (fpi_orient){(H - 1) * W, 1, -W, w, h}; break;           /* flip */
    case 5: m = (fpi_orient){0, H, 1, h, w}; break;                      /* transpose */
    case 6: m = (fpi_orient){H - 1, H, -1, h, w}; break;                 /* rotate 90 cw */
    case 7: m = (fpi_orient){(W - 1) * H + H - 1, -H, -1, h, w}; break;  /* transverse */
    case 8: m = (fpi_orient){(W - 1) * H, -H, 1, h, w}; break;           /* rotate 90 ccw */
    default: break;
    }
    return m;
}

/* Reads a big-endian 32-bit value. */
static uint32_t fpi_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Reads a 16- or 32-bit TIFF integer in the given byte order. */
static unsigned fpi_tiff16(const uint8_t *p, int le) { return le ? p[0] | p[1] << 8 : p[0] << 8 | p[1]; }
static uint32_t fpi_tiff32(const uint8_t *p, int le)
{
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Returns the orientation tag (1..8) of a TIFF structure of n bytes (the
 * payload of a PNG eXIf chunk), or 1 when absent or malformed. Reads IFD0
 * only, as OpenCV does; every read is bounds-checked. */
static int fpi_tiff_orientation(const uint8_t *t, size_t tn)
{
    int le;
    if (tn < 8) return 1;
    if (t[0] == 'I' && t[1] == 'I') le = 1;
    else if (t[0] == 'M' && t[1] == 'M') le = 0;
    else return 1;
    if (fpi_tiff16(t + 2, le) != 42) return 1;
    uint32_t ifd = fpi_tiff32(t + 4, le);
    if (ifd > tn || tn - ifd < 2) return 1;
    unsigned count = fpi_tiff16(t + ifd, le);
    for (unsigned i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        if (e + 12 > tn) return 1;
        if (fpi_tiff16(t + e, le) != 0x0112) continue;
        if (fpi_tiff16(t + e + 2, le) != 3) return 1; /* must be SHORT */
        unsigned o = fpi_tiff16(t + e + 8, le);
        return (o >= 1 && o <= 8) ? (int)o : 1;
    }
    return 1;
}

/* Orientation of a JPEG APP1 payload ("Exif\0\0" + TIFF), 1 if none. */
static int fpi_exif_orientation(const uint8_t *d, size_t n)
{
    if (n < 6 || memcmp(d, "Exif\0\0", 6) != 0) return 1;
    return fpi_tiff_orientation(d + 6, n - 6);
}

/* libjpeg error manager that returns through longjmp instead of exit(). */
typedef struct fpi_jpeg_err {
    struct jpeg_error_mgr pub;  /* libjpeg's manager; must be first */
    jmp_buf jump;               /* set in fpi_jpeg_run */
    fp_status status;           /* what the longjmp reports */
    char msg[JMSG_LENGTH_MAX];  /* libjpeg's message for the failure */
} fpi_jpeg_err;

/* Progress monitor that bounds the number of progressive scans. */
typedef struct fpi_jpeg_progress {
    struct jpeg_progress_mgr pub; /* libjpeg's monitor; must be first */
    int max_scans;                /* refuse beyond this many scans */
} fpi_jpeg_progress;

/* Everything fpi_jpeg_run touches between setjmp and longjmp lives here,
 * outside the function holding the jmp_buf, so it survives the jump. */
typedef struct fpi_jpeg_ctx {
    struct jpeg_decompress_struct cinfo; /* zeroed before use so destroy is safe */
    fpi_jpeg_err err;                    /* error manager */
    fpi_jpeg_progress progress;          /* scan limit */
    unsigned char *row;                  /* one decoded scanline (fpi_malloc) */
    fp_image im;                         /* the output being filled */
    const char *name;                    /* file name for messages */
} fpi_jpeg_ctx;

/* error_exit: records libjpeg's message and jumps back; never returns. */
static void fpi_jpeg_error_exit(j_common_ptr cinfo)
{
    fpi_jpeg_err *e = (fpi_jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    e->status = e->pub.msg_code == JERR_OUT_OF_MEMORY ? FP_ENOMEM : FP_ECORRUPT;
    longjmp(e->jump, 1);
}

/* emit_message: silences libjpeg's stderr output; the warnings that mean the
 * data ended early (truncated file or scan) become errors. */
static void fpi_jpeg_emit_message(j_common_ptr cinfo, int level)
{
    fpi_jpeg_err *e = (fpi_jpeg_err *)cinfo->err;
    if (level >= 0) return; /* trace messages */
    e->pub.num_warnings++;
    if (e->pub.msg_code == JWRN_JPEG_EOF || e->pub.msg_code == JWRN_HIT_MARKER)
        fpi_jpeg_error_exit(cinfo);
}

/* output_message: never prints. */
static void fpi_jpeg_output_message(j_common_ptr cinfo) { (void)cinfo; }

/* progress_monitor: refuses pathological progressive files (CPU bomb). */
static void fpi_jpeg_progress_monitor(j_common_ptr cinfo)
{
    fpi_jpeg_progress *p = (fpi_jpeg_progress *)cinfo->progress;
    if (cinfo->is_decompressor &&
        ((j_decompress_ptr)cinfo)->input_scan_number > p->max_scans) {
        fpi_jpeg_err *e = (fpi_jpeg_err *)cinfo->err;
        snprintf(e->msg, sizeof e->msg, "more than %d progressive scans", p->max_scans);
        e->status = FP_ECORRUPT;
        longjmp(e->jump, 1);
    }
}

/* Decodes a JPEG into x->im. On error returns a status with the message
 * recorded; the caller (fpi_decode_jpeg) frees x->row, x->im and cinfo. */
static fp_status fpi_jpeg_run(fpi_jpeg_ctx *x, const uint8_t *bytes, size_t len)
{
    struct jpeg_decompress_struct *ci = &x->cinfo;

    ci->err = jpeg_std_error(&x->err.pub);
    x->err.pub.error_exit = fpi_jpeg_error_exit;
    x->err.pub.emit_message = fpi_jpeg_emit_message;
    x->err.pub.output_message = fpi_jpeg_output_message;
    if (setjmp(x->err.jump))
        return fpi_error(x->err.status, "%s: %s JPEG: %s", x->name,
                         x->err.status == FP_ENOMEM ? "out of memory decoding" : "corrupt",
                         x->err.msg);

    jpeg_create_decompress(ci);
    x->progress.pub.progress_monitor = fpi_jpeg_progress_monitor;
    x->progress.max_scans = FPI_JPEG_MAX_SCANS;
    ci->progress = &x->progress.pub;
    ci->mem->max_memory_to_use = FPI_JPEG_MAX_MEMORY;
    jpeg_mem_src(ci, bytes, (unsigned long)len);
    jpeg_save_markers(ci, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(ci, TRUE);

    fp_status st = fpi_check_declared(x->name, "JPEG", ci->image_width, ci->image_height);
    if (st) return st;

    /* OpenCV: 4-component (CMYK, YCCK) files are decoded as CMYK and
     * converted by hand; everything else straight to RGB. */
    int cmyk;
    switch (ci->jpeg_color_space) {
    case JCS_GRAYSCALE:
    case JCS_YCbCr:
    case JCS_RGB: cmyk = 0; break;
    case JCS_CMYK:
    case JCS_YCCK: cmyk = 1; break;
    default:
        return fpi_error(FP_EUNSUPPORTED, "%s: JPEG colour space with %d components is not supported",
                         x->name, ci->num_components);
    }
    ci->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    ci->dct_method = JDCT_ISLOW;
    ci->do_fancy_upsampling = TRUE;
    ci->scale_num = ci->scale_denom = 1;

    /* OpenCV applies the orientation of the first APP1 marker, if EXIF. */
    int orientation = 1;
    for (jpeg_saved_marker_ptr m = ci->marker_list; m; m = m->next) {
        if (m->marker != JPEG_APP0 + 1) continue;
        orientation = fpi_exif_orientation(m->data, m->data_length);
        break;
    }

    jpeg_start_decompress(ci);
    const int w = (int)ci->output_width, h = (int)ci->output_height;
    const int nc = ci->output_components;
    if (ci->output_width != ci->image_width || ci->output_height != ci->image_height ||
        nc != (cmyk ? 4 : 3))
        return fpi_error(FP_ECORRUPT, "%s: JPEG decoder output does not match the header", x->name);

    fpi_orient o = fpi_orient_make(orientation, w, h);
    st = fp_image_make(o.out_w, o.out_h, 3, 0.0f, &x->im);
    if (st) return fpi_error_context(st, "%s", x->name);
    x->row = fpi_malloc((size_t)w * (size_t)nc);
    if (!x->row) return fpi_error(FP_ENOMEM, "%s: out of memory decoding JPEG", x->name);

    const size_t plane = (size_t)w * (size_t)h;
    float *r = x->im.data, *g = r + plane, *b = g + plane;
    while (ci->output_scanline < ci->output_height) {
        const ptrdiff_t y = (ptrdiff_t)ci->output_scanline;
        JSAMPROW rows[1] = {x->row};
        if (jpeg_read_scanlines(ci, rows, 1) != 1)
            return fpi_error(FP_ECORRUPT, "%s: corrupt JPEG: no data for row %td", x->name, y);
        const unsigned char *p = x->row;
        ptrdiff_t idx = o.base + y * o.sy;
        for (int i = 0; i < w; i++, p += nc, idx += o.sx) {
            unsigned rv = p[0], gv = p[1], bv = p[2];
            if (cmyk) { /* OpenCV's icvCvt_CMYK2BGR_8u_C4C3R */
                unsigned k = p[3];
                rv = k - ((255 - p[0]) * k >> 8);
                gv = k - ((255 - p[1]) * k >> 8);
                bv = k - ((255 - p[2]) * k >> 8);
            }
            r[idx] = fpi_unit(rv);
            g[idx] = fpi_unit(gv);
            b[idx] = fpi_unit(bv);
        }
    }
    jpeg_finish_decompress(ci); /* reads up to EOI: a missing tail is an error */
    return FP_OK;
}

/* JPEG front end: runs the decoder, then releases whatever it left behind. */
static fp_status fpi_decode_jpeg(const uint8_t *bytes, size_t len, const char *name, fp_image *out)
{
    fpi_jpeg_ctx *x = fpi_calloc(1, sizeof *x);
    if (!x) return fpi_error(FP_ENOMEM, "%s: out of memory decoding JPEG", name);
    x->name = name;
    fp_status st = fpi_jpeg_run(x, bytes, len);
    jpeg_destroy_decompress(&x->cinfo); /* no-op when never created */
    fpi_free(x->row);
    if (st == FP_OK) *out = x->im;
    else fp_image_free(&x->im);
    fpi_free(x);
    return st;
}

/* Lossless JPEG re-encoding: the same DCT coefficients, quantisation tables
 * and sampling, written with Huffman tables made for this image (libjpeg's
 * two-pass optimize_coding, jpegtran -optimize). A decoder gets the same
 * pixels from either file; the bytes shrink by a few per cent where the
 * camera used the standard tables. Metadata that does not change the
 * pixels is left out. */
typedef struct fpi_jpeg_tc {
    struct jpeg_decompress_struct in;  /* zeroed before use so destroy is safe */
    struct jpeg_compress_struct out;
    fpi_jpeg_err err;                  /* shared error manager */
    fpi_jpeg_progress progress;        /* scan limit on the reader */
    unsigned char *buf;                /* jpeg_mem_dest's output (malloc) */
    unsigned long len;
    const char *name;
} fpi_jpeg_tc;

static fp_status fpi_jpeg_tc_run(fpi_jpeg_tc *x, const uint8_t *bytes, size_t len)
{
    x->in.err = jpeg_std_error(&x->err.pub);
    x->err.pub.error_exit = fpi_jpeg_error_exit;
    x->err.pub.emit_message = fpi_jpeg_emit_message;
    x->err.pub.output_message = fpi_jpeg_output_message;
    x->out.err = &x->err.pub;
    if (setjmp(x->err.jump))
        return fpi_error(x->err.status, "%s: %s JPEG: %s", x->name,
                         x->err.status == FP_ENOMEM ? "out of memory re-encoding" : "corrupt", x->err.msg);
    jpeg_create_decompress(&x->in);
    x->progress.pub.progress_monitor = fpi_jpeg_progress_monitor;
    x->progress.max_scans = FPI_JPEG_MAX_SCANS;
    x->in.progress = &x->progress.pub;
    x->in.mem->max_memory_to_use = FPI_JPEG_MAX_MEMORY;
    jpeg_mem_src(&x->in, bytes, (unsigned long)len);
    jpeg_save_markers(&x->in, JPEG_APP0 + 1, 0xFFFF); /* EXIF: the orientation decoders apply */
    jpeg_read_header(&x->in, TRUE);
    fp_status st = fpi_check_declared(x->name, "JPEG", x->in.image_width, x->in.image_height);
    if (st) return st;
    /* Only what gets the same markers back: sequential Huffman files in
     * YCbCr or grey (CMYK, YCCK and RGB depend on an Adobe marker). */
    if (x->in.progressive_mode || x->in.arith_code ||
        !(x->in.jpeg_color_space == JCS_YCbCr || x->in.jpeg_color_space == JCS_GRAYSCALE))
        return fpi_error(FP_EUNSUPPORTED, "%s: only sequential YCbCr or grey JPEGs are re-encoded", x->name);
    jvirt_barray_ptr *coef = jpeg_read_coefficients(&x->in);
    jpeg_create_compress(&x->out);
    jpeg_copy_critical_parameters(&x->in, &x->out);
    x->out.optimize_coding = TRUE;
    jpeg_mem_dest(&x->out, &x->buf, &x->len);
    jpeg_write_coefficients(&x->out, coef);
    /* Decoders read the orientation of the first APP1 only: keep it where it
     * turns the image, drop the rest of the metadata (EXIF thumbnails are
     * often kilobytes). */
    jpeg_saved_marker_ptr m = x->in.marker_list;
    if (m && fpi_exif_orientation(m->data, m->data_length) != 1)
        jpeg_write_marker(&x->out, m->marker, m->data, m->data_length);
    jpeg_finish_compress(&x->out);
    jpeg_finish_decompress(&x->in); /* reads up to EOI: a missing tail is an error */
    return FP_OK;
}

fp_status fp_image_jpeg_optimize(const uint8_t *bytes, size_t len, const char *name, uint8_t **out,
                                 size_t *out_len)
{
    if (!out || !out_len || (!bytes && len)) return fpi_error(FP_EINVAL, "fp_image_jpeg_optimize: NULL argument");
    if (!name) name = "<memory>";
    *out = NULL;
    *out_len = 0;
    if (len < 3 || bytes[0] != 0xff || bytes[1] != 0xd8 || bytes[2] != 0xff)
        return fpi_error(FP_EUNSUPPORTED, "%s: not a JPEG", name);
    fpi_jpeg_tc *x = fpi_calloc(1, sizeof *x);
    if (!x) return fpi_error(FP_ENOMEM, "%s: out of memory re-encoding JPEG", name);
    x->name = name;
    fp_status st = fpi_jpeg_tc_run(x, bytes, len);
    jpeg_destroy_compress(&x->out); /* no-op when never created */
    jpeg_destroy_decompress(&x->in);
    if (st == FP_OK && x->buf) {
        *out = x->buf;
        *out_len = x->len;
    } else {
        free(x->buf);
        if (st == FP_OK) st = fpi_error(FP_ENOMEM, "%s: out of memory re-encoding JPEG", name);
    }
    fpi_free(x);
    return st;
}

/* Reads a little-endian 16/32-bit value. */
static uint32_t fpi_le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t fpi_le32(const uint8_t *p) { return fpi_le16(p) | fpi_le16(p + 2) << 16; }

/* Converts interleaved 8-bit RGB (w×h) to a new float image, applying EXIF
 * orientation o. *out is written only on success. */
static fp_status fpi_rgb8_to_image(const unsigned char *px, int w, int h, int o, const char *name,
                                   fp_image *out)
{
    fpi_orient m = fpi_orient_make(o, w, h);
    fp_image im = {0};
    fp_status st = fp_image_make(m.out_w, m.out_h, 3, 0.0f, &im);
    if (st) return fpi_error_context(st, "%s", name);
    const size_t plane = (size_t)w * (size_t)h;
    float *r = im.data, *g = r + plane, *b = g + plane;
    for (ptrdiff_t y = 0; y < h; y++) {
        ptrdiff_t idx = m.base + y * m.sy;
        const unsigned char *p = px + (size_t)y * (size_t)w * 3;
        for (int x = 0; x < w; x++, p += 3, idx += m.sx) {
            r[idx] = fpi_unit(p[0]);
            g[idx] = fpi_unit(p[1]);
            b[idx] = fpi_unit(p[2]);
        }
    }
    *out = im;
    return FP_OK;
}

/* What fpi_bmp_check learns from a BMP header. */
typedef struct fpi_bmp {
    uint32_t off;  /* offset of the pixel rows */
    long long w;   /* columns */
    long long h;   /* rows (absolute) */
    int top_down;  /* 1 when the first row is the top one */
    uint32_t bpp;  /* bits per pixel */
    uint32_t comp; /* compression: 0 RGB, 3/6 bit fields */
} fpi_bmp;

/* Checks what stb_image does not: that an uncompressed BMP holds all the
 * pixel rows it declares (stb pads a short file with zeros), and that the
 * compression is one we decode. Fills *b. */
static fp_status fpi_bmp_check(const uint8_t *d, size_t len, const char *name, fpi_bmp *b)
{
    if (len < 26) return fpi_error(FP_ECORRUPT, "%s: truncated BMP header", name);
    uint32_t hsize = fpi_le32(d + 14);
    b->off = fpi_le32(d + 10);
    b->comp = 0;
    if (hsize == 12) { /* OS/2 BITMAPCOREHEADER */
        b->w = fpi_le16(d + 18);
        b->h = fpi_le16(d + 20);
        b->bpp = fpi_le16(d + 24);
    } else {
        if (len < 34) return fpi_error(FP_ECORRUPT, "%s: truncated BMP header", name);
        b->w = (int32_t)fpi_le32(d + 18);
        b->h = (int32_t)fpi_le32(d + 22);
        b->bpp = fpi_le16(d + 28);
        b->comp = fpi_le32(d + 30);
    }
    b->top_down = b->h < 0;
    if (b->h < 0) b->h = -b->h;
    fp_status st = fpi_check_declared(name, "BMP", b->w, b->h);
    if (st) return st;
    if (b->comp != 0 && b->comp != 3 && b->comp != 6)
        return fpi_error(FP_EUNSUPPORTED, "%s: BMP compression %u (RLE/JPEG/PNG) is not supported",
                         name, (unsigned)b->comp);
    if (b->bpp != 1 && b->bpp != 4 && b->bpp != 8 && b->bpp != 16 && b->bpp != 24 && b->bpp != 32)
        return fpi_error(FP_ECORRUPT, "%s: BMP with %u bits per pixel", name, (unsigned)b->bpp);
    long long stride = ((b->w * b->bpp + 31) / 32) * 4;
    if ((long long)b->off + stride * b->h > (long long)len)
        return fpi_error(FP_ECORRUPT, "%s: truncated BMP (%zu bytes, pixel data needs %lld)", name,
                         len, (long long)b->off + stride * b->h);
    return FP_OK;
}

/* 16-bit BMPs the way OpenCV reads them: 5-5-5 (or 5-6-5 bit fields)
 * widened by a shift, without replicating the top bits as stb does. */
static fp_status fpi_decode_bmp16(const uint8_t *d, size_t len, const char *name, const fpi_bmp *b,
                                  fp_image *out)
{
    int g6 = 0;
    if (b->comp != 0) {
        if (b->comp != 3 || len < 66)
            return fpi_error(FP_EUNSUPPORTED, "%s: 16-bit BMP with compression %u is not supported",
                             name, (unsigned)b->comp);
        uint32_t rm = fpi_le32(d + 54), gm = fpi_le32(d + 58), bm = fpi_le32(d + 62);
        if (rm == 0xF800 && gm == 0x7E0 && bm == 0x1F) g6 = 1;
        else if (!(rm == 0x7C00 && gm == 0x3E0 && bm == 0x1F))
            return fpi_error(FP_EUNSUPPORTED, "%s: 16-bit BMP bit fields other than 5-5-5 and 5-6-5",
                             name);
    }
    const int w = (int)b->w, h = (int)b->h;
    const size_t stride = (((size_t)w * 16 + 31) / 32) * 4;
    fp_image im = {0};
    fp_status st = fp_image_make(w, h, 3, 0.0f, &im);
    if (st) return fpi_error_context(st, "%s", name);
    const size_t plane = (size_t)w * (size_t)h;
    for (int y = 0; y < h; y++) {
        const uint8_t *row = d + b->off + (size_t)(b->top_down ? y : h - 1 - y) * stride;
        for (int x = 0; x < w; x++) {
            unsigned t = fpi_le16(row + 2 * (size_t)x);
            unsigned rv = g6 ? (t >> 8) & 0xF8 : (t >> 7) & 0xF8;
            unsigned gv = g6 ? (t >> 3) & 0xFC : (t >> 2) & 0xF8;
            unsigned bv = (t << 3) & 0xF8;
            size_t i = (size_t)y * (size_t)w + (size_t)x;
            im.data[i] = fpi_unit(rv);
            im.data[plane + i] = fpi_unit(gv);
            im.data[2 * plane + i] = fpi_unit(bv);
        }
    }
    *out = im;
    return FP_OK;
}

/* Walks the PNG chunk list (bounded by len): *orientation gets the EXIF
 * orientation of the first eXIf chunk (OpenCV applies it wherever the chunk
 * sits; 1 if none). Returns 0 when the list does not end in a complete IEND
 * chunk, i.e. the file is truncated (stb would decode it anyway). */
static int fpi_png_walk(const uint8_t *d, size_t len, int *orientation)
{
    size_t pos = 8;
    int seen_exif = 0;
    *orientation = 1;
    while (len - pos >= 12) {
        uint32_t n = fpi_be32(d + pos);
        if (n > len - pos - 12) return 0;
        if (!memcmp(d + pos + 4, "eXIf", 4) && !seen_exif) {
            *orientation = fpi_tiff_orientation(d + pos + 8, n);
            seen_exif = 1;
        }
        if (!memcmp(d + pos + 4, "IEND", 4)) return 1;
        pos += 12 + (size_t)n;
    }
    return 0;
}

/* PNG and BMP through stb_image; the header is read first for the size
 * check. o is the EXIF orientation to apply. */
static fp_status fpi_decode_stb(const uint8_t *bytes, size_t len, const char *name,
                                const char *fmt, int o, fp_image *out)
{
    int w, h, n, w2, h2, n2;
    if (len > INT_MAX) return fpi_error(FP_ETOOBIG, "%s: file too large", name);
    if (!stbi_info_from_memory(bytes, (int)len, &w, &h, &n))
        return fpi_error(FP_ECORRUPT, "%s: corrupt %s header (%s)", name, fmt, stbi_failure_reason());
    fp_status st = fpi_check_declared(name, fmt, w, h);
    if (st) return st;

    unsigned char *px = stbi_load_from_memory(bytes, (int)len, &w2, &h2, &n2, 3);
    if (!px) {
        const char *why = stbi_failure_reason();
        if (why && !strcmp(why, "outofmem"))
            return fpi_error(FP_ENOMEM, "%s: out of memory decoding %s", name, fmt);
        return fpi_error(FP_ECORRUPT, "%s: corrupt %s (%s)", name, fmt, why ? why : "?");
    }
    if (w2 != w || h2 != h)
        st = fpi_error(FP_ECORRUPT, "%s: %s decoder size %dx%d differs from header %dx%d", name,
                       fmt, w2, h2, w, h);
    else
        st = fpi_rgb8_to_image(px, w, h, o, name, out);
    stbi_image_free(px);
    return st;
}

/* Cursor over a PNM file. */
typedef struct fpi_pnm {
    const uint8_t *d; /* file bytes */
    size_t len;       /* file size */
    size_t pos;       /* next byte */
} fpi_pnm;

/* 1 for the white space PNM headers allow. */
static int fpi_pnm_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

/* Skips white space and '#' comments, then reads a decimal integer of at
 * most 9 digits into *v. Returns 1, or 0 when none is there. */
static int fpi_pnm_int(fpi_pnm *p, long *v)
{
    for (;;) {
        while (p->pos < p->len && fpi_pnm_space(p->d[p->pos])) p->pos++;
        if (p->pos < p->len && p->d[p->pos] == '#') {
            while (p->pos < p->len && p->d[p->pos] != '\n' && p->d[p->pos] != '\r') p->pos++;
            continue;
        }
        break;
    }
    long n = 0;
    int digits = 0;
    while (p->pos < p->len && p->d[p->pos] >= '0' && p->d[p->pos] <= '9') {
        if (++digits > 9) return 0;
        n = n * 10 + (p->d[p->pos++] - '0');
    }
    *v = n;
    return digits > 0;
}

/* Binary PGM (P5) and PPM (P6). Like OpenCV's imread (and stb), samples are
 * not rescaled by maxval: 8-bit samples are taken as they are, 16-bit
 * (big-endian, maxval > 255) samples keep their high byte. */
static fp_status fpi_decode_pnm(const uint8_t *bytes, size_t len, const char *name, fp_image *out)
{
    fpi_pnm p = {bytes, len, 2};
    const size_t nc = bytes[1] == '6' ? 3 : 1;
    long w, h, maxval;
    if (!fpi_pnm_int(&p, &w) || !fpi_pnm_int(&p, &h) || !fpi_pnm_int(&p, &maxval))
        return fpi_error(FP_ECORRUPT, "%s: corrupt PNM header", name);
    fp_status st = fpi_check_declared(name, "PNM", w, h);
    if (st) return st;
    if (maxval < 1 || maxval > 65535)
        return fpi_error(FP_ECORRUPT, "%s: PNM maxval must be 1..65535 (got %ld)", name, maxval);
    if (p.pos >= len || !fpi_pnm_space(bytes[p.pos]))
        return fpi_error(FP_ECORRUPT, "%s: corrupt PNM header", name);
    p.pos++; /* the single white space before the samples */
    const size_t bps = maxval > 255 ? 2 : 1;
    const size_t plane = (size_t)w * (size_t)h;
    const size_t need = plane * nc * bps;
    if (len - p.pos < need)
        return fpi_error(FP_ECORRUPT, "%s: truncated PNM (%zu bytes of pixel data, need %zu)", name,
                         len - p.pos, need);

    fp_image im = {0};
    st = fp_image_make((int)w, (int)h, 3, 0.0f, &im);
    if (st) return fpi_error_context(st, "%s", name);
    const uint8_t *s = bytes + p.pos;
    for (size_t i = 0; i < plane; i++)
        for (size_t k = 0; k < 3; k++)
            im.data[k * plane + i] = fpi_unit(s[(i * nc + (nc == 3 ? k : 0)) * bps]);
    *out = im;
    return FP_OK;
}

fp_status fp_image_decode(const uint8_t *bytes, size_t len, const char *name, fp_image *out)
{
    if (!name) name = "<memory>";
    if (!out || (!bytes && len))
        return fpi_error(FP_EINVAL, "%s: fp_image_decode: NULL argument", name);
    if (len == 0) return fpi_error(FP_ECORRUPT, "%s: empty file", name);
    if (len > FP_IMAGE_MAX_FILE)
        return fpi_error(FP_ETOOBIG, "%s: file of %zu bytes exceeds the %d-byte limit", name, len,
                         FP_IMAGE_MAX_FILE);

    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (len >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
        return fpi_decode_jpeg(bytes, len, name, out);
    if (len >= 8 && !memcmp(bytes, png_sig, 8)) {
        /* stb refuses large PNGs with a vague message; check IHDR first. */
        if (len >= 24 && !memcmp(bytes + 12, "IHDR", 4)) {
            fp_status st = fpi_check_declared(name, "PNG", fpi_be32(bytes + 16), fpi_be32(bytes + 20));
            if (st) return st;
        }
        int orientation;
        if (!fpi_png_walk(bytes, len, &orientation))
            return fpi_error(FP_ECORRUPT, "%s: truncated PNG (no complete IEND chunk)", name);
        return fpi_decode_stb(bytes, len, name, "PNG", orientation, out);
    }
    if (len >= 2 && bytes[0] == 'B' && bytes[1] == 'M') {
        fpi_bmp bmp = {0};
        fp_status st = fpi_bmp_check(bytes, len, name, &bmp);
        if (st) return st;
        if (bmp.bpp == 16) return fpi_decode_bmp16(bytes, len, name, &bmp, out);
        return fpi_decode_stb(bytes, len, name, "BMP", 1, out);
    }
    if (len >= 2 && bytes[0] == 'P' && (bytes[1] == '5' || bytes[1] == '6'))
        return fpi_decode_pnm(bytes, len, name, out);
    if (len >= 2 && bytes[0] == 'P' && bytes[1] >= '1' && bytes[1] <= '4')
        return fpi_error(FP_EUNSUPPORTED, "%s: only binary PPM/PGM (P5, P6) is supported (got P%c)",
                         name, bytes[1]);
    return fpi_error(FP_EUNSUPPORTED, "%s: not a JPEG, PNG, BMP or PPM image", name);
}

fp_status fp_image_load(const char *path, fp_image *out)
{
    char *data = NULL;
    size_t size = 0;
    if (!path || !out) return fpi_error(FP_EINVAL, "fp_image_load: NULL argument");
    fp_status st = fpi_read_file(path, FP_IMAGE_MAX_FILE, &data, &size);
    if (st) return st;
    st = fp_image_decode((const uint8_t *)data, size, path, out);
    fpi_free(data);
    return st;
}
