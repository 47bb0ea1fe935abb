/* stage_weights.c — the parameters of one contiguous range of layers as a
 * blob (what a pipeline stage holds), so a stage can be sent only its own
 * layers' weights instead of the whole model (docs/deploy.md). Layout,
 * little-endian (fogpipe builds only for little-endian hosts):
 *   0   "FPSTAGEW"     magic, 8 bytes
 *   8   u32 version    1
 *   12  i32 first      first layer of the range
 *   16  i32 last       last layer
 *   20  u32 layers     the model's layer count
 *   24  u64 count      parameters that follow
 *   32  f32[count]     the range's parameters as the network holds them
 *                      (darknet's order; connected weights already transposed)
 * The blob is untrusted: every field is checked against the network it is
 * loaded into, and every value must be finite. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common/common.h"
#include "engine/net_impl.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "stage weights blobs are written in the host's byte order, which must be little-endian"
#endif

enum { FPI_SW_HEADER = 32, FPI_SW_VERSION = 1 };
static const char fpi_sw_magic[8] = {'F', 'P', 'S', 'T', 'A', 'G', 'E', 'W'};

/* First parameter of layer `first` and the count up to the end of `last`. */
static void fpi_sw_span(const fp_net *net, int first, int last, size_t *base, size_t *count)
{
    *base = net->layers[first].param_off;
    *count = net->layers[last].param_off + net->layers[last].n_params - *base;
}

size_t fp_net_stage_weights_size(const fp_net *net, int first, int last)
{
    if (!net || first < 0 || last >= net->n || first > last) return 0;
    size_t base, count;
    fpi_sw_span(net, first, last, &base, &count);
    return FPI_SW_HEADER + count * sizeof(float);
}

fp_status fp_net_stage_weights(const fp_net *net, int first, int last, void **out, size_t *len)
{
    if (!net || !out || !len) return fpi_error(FP_EINVAL, "fp_net_stage_weights: NULL argument");
    if (first < 0 || last >= net->n || first > last)
        return fpi_error(FP_EINVAL, "layer range %d..%d outside 0..%d", first, last, net->n - 1);
    if (!net->weights_loaded) return fpi_error(FP_ESTATE, "the network has no weights to hand out");
    if (net->weights_prepared)
        return fpi_error(FP_ESTATE, "the network is set up (batch-norm folded into its weights); cut stage "
                                    "weights before fp_net_setup");
    size_t base, count;
    fpi_sw_span(net, first, last, &base, &count);
    if (base < net->param_base || base + count > net->param_base + net->n_held)
        return fpi_error(FP_ESTATE, "the network holds layers %d..%d, not %d..%d", net->first, net->last, first, last);
    size_t bytes = FPI_SW_HEADER + count * sizeof(float);
    unsigned char *b = fpi_malloc(bytes);
    if (!b) return fpi_error(FP_ENOMEM, "out of memory for %zu bytes of stage weights", bytes);
    uint32_t version = FPI_SW_VERSION, layers = (uint32_t)net->n;
    int32_t f = first, l = last;
    uint64_t n = count;
    memcpy(b, fpi_sw_magic, 8);
    memcpy(b + 8, &version, 4);
    memcpy(b + 12, &f, 4);
    memcpy(b + 16, &l, 4);
    memcpy(b + 20, &layers, 4);
    memcpy(b + 24, &n, 8);
    if (count) memcpy(b + FPI_SW_HEADER, net->params + (base - net->param_base), count * sizeof(float));
    *out = b;
    *len = bytes;
    return FP_OK;
}

fp_status fp_net_load_stage_weights(fp_net *net, const void *blob, size_t len, const char *name)
{
    if (!net || (!blob && len) || !name) return fpi_error(FP_EINVAL, "fp_net_load_stage_weights: NULL argument");
    if (net->weights_prepared)
        return fpi_error(FP_ESTATE, "%s: weights already prepared; load them before fp_net_setup", name);
    const unsigned char *b = blob;
    if (len < FPI_SW_HEADER || memcmp(b, fpi_sw_magic, 8))
        return fpi_error(FP_ECORRUPT, "%s: not fogpipe stage weights (no FPSTAGEW header)", name);
    uint32_t version, layers;
    int32_t first, last;
    uint64_t count;
    memcpy(&version, b + 8, 4);
    memcpy(&first, b + 12, 4);
    memcpy(&last, b + 16, 4);
    memcpy(&layers, b + 20, 4);
    memcpy(&count, b + 24, 8);
    if (version != FPI_SW_VERSION)
        return fpi_error(FP_EUNSUPPORTED, "%s: stage weights version %u (this fogpipe reads %d)", name, version,
                         FPI_SW_VERSION);
    if (layers != (uint32_t)net->n)
        return fpi_error(FP_ECORRUPT, "%s: stage weights for a model of %u layers, this one has %d", name, layers,
                         net->n);
    if (first != net->first || last != net->last)
        return fpi_error(FP_ECORRUPT, "%s: stage weights for layers %d..%d, the network holds %d..%d", name, first,
                         last, net->first, net->last);
    size_t base, want;
    fpi_sw_span(net, first, last, &base, &want);
    if (count != want || (len - FPI_SW_HEADER) / sizeof(float) != want || (len - FPI_SW_HEADER) % sizeof(float))
        return fpi_error(FP_ECORRUPT, "%s: %zu bytes holding %llu parameters, but layers %d..%d need %zu (%zu bytes)",
                         name, len, (unsigned long long)count, first, last, want, FPI_SW_HEADER + want * sizeof(float));
    if (base != net->param_base || want != net->n_held)
        return fpi_error(FP_ESTATE, "%s: the network's parameter block is not layers %d..%d", name, first, last);
    const float *v = (const float *)(const void *)(b + FPI_SW_HEADER);
    for (size_t k = 0; k < want; k++) {
        float x;
        memcpy(&x, v + k, sizeof x);
        if (!isfinite(x)) return fpi_error(FP_ECORRUPT, "%s: parameter %zu is not finite", name, k);
    }
    if (!net->params) {
        size_t bytes;
        if (!fpi_mul_size(want ? want : 1, sizeof(float), &bytes) || !(net->params = fpi_malloc_aligned(bytes)))
            return fpi_error(FP_ENOMEM, "%s: out of memory for %zu parameters", name, want);
    }
    if (want) memcpy(net->params, v, want * sizeof(float));
    net->weights_loaded = 1;
    return FP_OK;
}
