/*
 * fogpipe/status.h — status codes shared by every module.
 *
 * Every fallible public function returns an fp_status; results travel through
 * out-parameters. FP_OK is 0. On failure the library also records a one-line
 * human-readable explanation for the calling thread, readable with
 * fp_last_error() until the next failing call on that thread:
 *
 *     fp_net *net;
 *     fp_status st = fp_net_load_cfg("yolov2-tiny.cfg", &net);
 *     if (st != FP_OK) {
 *         fprintf(stderr, "fogpipe: %s\n", fp_last_error());
 *         return 1;
 *     }
 */
#ifndef FOGPIPE_STATUS_H
#define FOGPIPE_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, description): the single list that generates the enum, the names
 * and the descriptions. Append only: values are part of the ABI. */
#define FP_STATUS_LIST(X)                                        \
    X(OK, "success")                                             \
    X(EINVAL, "invalid argument")                                \
    X(ECORRUPT, "corrupt input")                                 \
    X(EUNSUPPORTED, "unsupported")                               \
    X(ENOMEM, "out of memory")                                   \
    X(EIO, "input/output error")                                 \
    X(EPROTO, "protocol error")                                  \
    X(ETOOBIG, "too big")                                        \
    X(ENOTFOUND, "not found")                                    \
    X(ESTATE, "call not valid in the object's current state")    \
    X(ETIMEDOUT, "timed out")

typedef enum fp_status {
#define FP_STATUS_ENUM_(name, desc) FP_##name,
    FP_STATUS_LIST(FP_STATUS_ENUM_)
#undef FP_STATUS_ENUM_
    FP_STATUS_COUNT
} fp_status;

/* Short description of a status ("corrupt input"). Never NULL. */
const char *fp_strerror(fp_status status);

/* Symbolic name of a status ("FP_ECORRUPT"). Never NULL. */
const char *fp_status_name(fp_status status);

/* The calling thread's explanation of its last failure, e.g.
 * "yolov2-tiny.cfg:23: [convolutional] filters must be > 0 (got -1)".
 * Never NULL; "" when nothing failed yet. The pointer stays valid until the
 * thread's next failing call. */
const char *fp_last_error(void);

#ifdef __cplusplus
}
#endif
#endif /* FOGPIPE_STATUS_H */
