/*
 * tfjs.h — TensorFlow.js weight manifests: a JSON manifest (an array of
 * groups, each with "paths" of binary shards and "weights" specs) whose
 * tensors are stored back to back in the concatenated shards of their group.
 * The reader validates everything before it allocates or reads values and
 * dequantises to float32. Internal: not API.
 *
 * Supported specs: dtype "float32", stored as float32, as float16
 * (quantization {"dtype": "float16"}), or as uint8/uint16 with an affine
 * map (quantization {"dtype": "uint8"|"uint16", "scale": S, "min": M},
 * value = q*S + M computed in double, as TF.js does). Other dtypes (int32,
 * bool, string, complex64) are refused: no model we build uses them.
 */
#ifndef FP_MODEL_TFJS_H
#define FP_MODEL_TFJS_H

#include <stddef.h>

#include "fogpipe/status.h"

enum { FPI_TFJS_MAX_MANIFEST = 1 << 20 };    /* bytes of manifest JSON */
enum { FPI_TFJS_MAX_GROUPS = 64 };           /* weight groups in a manifest */
enum { FPI_TFJS_MAX_SHARDS = 256 };          /* shard files in one group */
enum { FPI_TFJS_MAX_PATH = 256 };            /* bytes of a shard path (with NUL) */
enum { FPI_TFJS_MAX_TENSORS = 1024 };        /* tensors in a manifest */
enum { FPI_TFJS_MAX_RANK = 4 };              /* dims of one tensor */
enum { FPI_TFJS_MAX_NAME = 128 };            /* bytes of a tensor name (with NUL) */
enum { FPI_TFJS_MAX_BYTES = 256 << 20 };     /* stored weight bytes in all */

/* How a tensor's values are stored in its shard. */
typedef enum fpi_tfjs_storage {
    FPI_TFJS_F32 = 0, /* float32, little-endian */
    FPI_TFJS_F16,     /* IEEE half, little-endian (quantization "float16") */
    FPI_TFJS_U8,      /* q*scale + min (quantization "uint8") */
    FPI_TFJS_U16,     /* q*scale + min, little-endian (quantization "uint16") */
} fpi_tfjs_storage;

typedef struct fpi_tfjs_tensor {
    char name[FPI_TFJS_MAX_NAME];  /* as in the manifest, NUL-terminated, unique */
    int rank;                      /* 0..FPI_TFJS_MAX_RANK */
    int shape[FPI_TFJS_MAX_RANK];  /* dims in TF order (conv filters: H, W, in, out) */
    size_t count;                  /* values: the product of the dims */
    fpi_tfjs_storage storage;      /* how the shard stores the values */
    float *data;                   /* count dequantised values, inside fpi_tfjs.values */
    int used;                      /* set by model builders to find unused tensors */
} fpi_tfjs_tensor;

typedef struct fpi_tfjs {
    int n;                         /* tensors */
    fpi_tfjs_tensor *tensors;      /* n tensors in manifest order (owned) */
    float *values;                 /* every tensor's values, one allocation (owned) */
    size_t n_values;               /* floats in values */
} fpi_tfjs;

/* Reads a manifest and its shards (paths relative to the manifest's folder;
 * absolute paths and ".." are refused). Every shard must exist and the
 * shards of each group must hold exactly the bytes its specs need; names
 * must be present and unique, shapes bounded, values finite. On success *out
 * owns the tensors (fpi_tfjs_free); on failure *out is zeroed and the message
 * names the manifest or shard and the reason. FP_EIO, FP_ECORRUPT (bad JSON,
 * bad spec, size mismatch, non-finite value), FP_EUNSUPPORTED (dtype),
 * FP_ETOOBIG (past the limits above), FP_ENOMEM. */
fp_status fpi_tfjs_load(const char *manifest, fpi_tfjs *out);

/* The same checks of the manifest alone: names, dtypes and shapes, no
 * shard opened, every tensor's data NULL (a pipeline stage that gets its
 * layers' values elsewhere builds the network from the shapes). */
fp_status fpi_tfjs_load_specs(const char *manifest, fpi_tfjs *out);

/* Frees what fpi_tfjs_load made and zeroes *m. NULL or zeroed: no-op. */
void fpi_tfjs_free(fpi_tfjs *m);

/* The tensor called `name`, or NULL. */
fpi_tfjs_tensor *fpi_tfjs_find(const fpi_tfjs *m, const char *name);

#endif /* FP_MODEL_TFJS_H */
