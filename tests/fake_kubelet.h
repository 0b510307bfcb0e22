/* A stand-in for the kubelet's read-only pod list, for tests and benchmarks:
 * HTTPS on 127.0.0.1 (libmicrohttpd over GnuTLS, with the test-only
 * certificate in tests/fixtures/k8s/), `GET /pods` answering a PodList of
 * the pods added so far, a bearer-token check (401 otherwise), and faults
 * on command: answer slowly, answer an HTTP error, be down (stopped), and
 * restart on the same port. Thread-safe. */
#ifndef SLUICE_TESTS_FAKE_KUBELET_H
#define SLUICE_TESTS_FAKE_KUBELET_H

#include <stddef.h>
#include <stdint.h>

typedef struct sl_fk sl_fk;

/* cert_dir holds kubelet-test.crt and kubelet-test.key; port 0: any free. */
int sl_fk_start(const char *cert_dir, int port, const char *token, sl_fk **out);
int sl_fk_port(const sl_fk *k);
void sl_fk_stop(sl_fk *k);
/* Stops listening (connections refused) / listens again on the same port;
 * the pods are kept. */
void sl_fk_down(sl_fk *k);
int sl_fk_up(sl_fk *k);

/* labels/annotations: JSON objects as text ("{\"app\":\"web\"}") or NULL.
 * Adding a UID that exists replaces it. */
int sl_fk_add_pod(sl_fk *k, const char *ns, const char *name, const char *uid, const char *labels,
                  const char *annotations);
void sl_fk_delete_pod(sl_fk *k, const char *uid);
/* Every answer waits this long first (0: none). */
void sl_fk_set_delay_ms(sl_fk *k, int ms);
/* Every answer is this HTTP status with no list (0: answer normally). */
void sl_fk_set_fail(sl_fk *k, int status);
/* Hostile answers (decision 0073), to an authorized /pods; each replaces
 * the list until set back (NULL / 0):
 * - raw: exactly these n bytes, status 200 (copied);
 * - stream: a 200 body of `bytes` bytes, a PodList's opening then spaces,
 *   sent at full speed, or one byte every ms_per_byte ms when > 0;
 * - redirect: 307 to https://127.0.0.1:<port>/pods. */
void sl_fk_set_raw(sl_fk *k, const char *body, size_t n);
void sl_fk_set_stream(sl_fk *k, uint64_t bytes, int ms_per_byte);
void sl_fk_set_redirect(sl_fk *k, int port);
/* Bytes of streamed bodies sent. */
uint64_t sl_fk_stream_sent(sl_fk *k);
/* /pods requests answered (any status), and those with a good token. */
uint64_t sl_fk_requests(sl_fk *k);
uint64_t sl_fk_authorized(sl_fk *k);
/* Bytes of the PodList bodies answered to /pods (status 200). */
uint64_t sl_fk_list_bytes(sl_fk *k);
/* The API-server watch a per-node watcher would have been sent for the same
 * changes (GET /api/v1/pods?watch=1&fieldSelector=spec.nodeName=...): the
 * events and their bytes, each rendered as the API server streams it,
 * `{"type":T,"object":<the Pod>}` and a newline. A pod's life is four
 * events, the fewest a real one makes: ADDED when bound to the node
 * (Pending), MODIFIED when the kubelet reports it Running, MODIFIED when its
 * deletion starts (deletionTimestamp), DELETED. Not served: counted. */
void sl_fk_watch_equivalent(sl_fk *k, uint64_t *events, uint64_t *bytes);

#endif
