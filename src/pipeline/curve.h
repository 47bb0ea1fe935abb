/*
 * curve.h — authenticated, encrypted links between the gateway and the
 * stages: ZeroMQ CURVE with one cluster key (docs/security.md). Internal.
 *
 * Every member of a pipeline (gateway, every stage replica) holds the same
 * key file, made by `fogpipe keys`. On each link the side that binds is the
 * CURVE server and the side that connects is the client:
 *   - a client checks that the server proves it holds the cluster's secret
 *     key (the server key is the cluster's public key), so a peer without
 *     the key cannot pose as the next stage and read frames;
 *   - the server's ZAP handler (ZeroMQ's authentication protocol, RFC 27)
 *     admits only clients whose long-term public key is the cluster's, so a
 *     peer without the key cannot inject frames;
 *   - everything after the handshake is encrypted and authenticated.
 *
 *     fpp_curve_key k;
 *     fpp_curve_key_load("cluster.key", &k);
 *     fpp_zap *z;
 *     fpp_zap_start(ctx, &k, &z);       // before the first server socket binds
 *     fpp_curve_server(pull, &k); zmq_bind(pull, ...);
 *     fpp_curve_client(push, &k); zmq_connect(push, ...);
 *     ... zmq_close every socket; fpp_zap_stop(z); zmq_ctx_term(ctx);
 */
#ifndef FP_PIPELINE_CURVE_H
#define FP_PIPELINE_CURVE_H

#include <stdint.h>

#include "fogpipe/status.h"

enum { FPP_Z85_KEY = 40 }; /* a 32-byte key in Z85 text */

typedef struct fpp_curve_key {
    char public_key[FPP_Z85_KEY + 1];
    char secret_key[FPP_Z85_KEY + 1];
} fpp_curve_key;

/* Makes a new key pair (libsodium's random generator). FP_EUNSUPPORTED when
 * libzmq was built without CURVE. */
fp_status fpp_curve_keygen(fpp_curve_key *k);

/* Writes k to a new file (mode 0600; FP_EIO if it exists), as text:
 *     public-key = "<40 Z85 characters>"
 *     secret-key = "<40 Z85 characters>"
 * with '#' comment lines above. */
fp_status fpp_curve_key_write(const char *path, const fpp_curve_key *k);

/* Reads a key file (at most 4 KiB; comments and blank lines allowed; both
 * keys required, each valid Z85; the public key must be the secret key's).
 * Warns when every user may read the file (group-readable is normal in a
 * Kubernetes Secret volume with fsGroup). FP_EINVAL with the
 * file, line and reason; FP_EIO. */
fp_status fpp_curve_key_load(const char *path, fpp_curve_key *k);

/* Makes a socket the CURVE server of its links (call before zmq_bind). */
fp_status fpp_curve_server(void *sock, const fpp_curve_key *k);

/* Makes a socket a CURVE client of servers holding k (before zmq_connect). */
fp_status fpp_curve_client(void *sock, const fpp_curve_key *k);

/* The ZAP handler of one ZeroMQ context: a thread that answers the
 * context's CURVE handshakes, admitting only k's public key. */
typedef struct fpp_zap fpp_zap;

/* Binds inproc://zeromq.zap.01 in ctx and starts the thread. Must come
 * before any CURVE server socket of ctx binds. FP_EIO, FP_ENOMEM. */
fp_status fpp_zap_start(void *ctx, const fpp_curve_key *k, fpp_zap **out);

/* Clients refused so far. */
uint64_t fpp_zap_denied(const fpp_zap *z);

/* Stops the thread and closes its socket; call before zmq_ctx_term (which
 * waits for every socket). NULL is a no-op. */
void fpp_zap_stop(fpp_zap *z);

#endif /* FP_PIPELINE_CURVE_H */
