/* src/infer/serve_replica.c — a replica group: the engine behind the wire
 * format, and the group's MPI loop.
 *
 * The leader (group rank 0) never blocks on the coordinator while it has
 * work: it drains incoming requests with MPI_Iprobe, runs one engine step,
 * and ships the step's events with MPI_Isend (each send buffer is kept until
 * its request completes, then freed), so a slow coordinator costs it
 * nothing. Only when the engine is idle does it wait for the next message,
 * sleeping between probes (idle_sleep) rather than spinning in MPI.
 *
 * Tensor parallelism (--tp T): every rank of the group runs the same engine
 * over its shard of the model (decoder_create_tp), in lockstep. Before each
 * step the leader broadcasts what arrived since the last one (the request
 * messages, verbatim, and whether to shut down); every rank submits the same
 * requests in the same order and runs the same step. Scheduling depends only
 * on what was submitted, and every rank samples from the same allgathered
 * logits with the same per-request RNG, so the engines never diverge and
 * their collectives always match. Only the leader sends events.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpi.h>

#include "backend.h"
#include "decoder.h"
#include "err.h"
#include "serve.h"
#include "serve_mpi.h"

int serve_engine_create(struct serve_engine *se, struct serve_model *m,
                        const struct serve_args *a, struct comm *tp) {
    memset(se, 0, sizeof *se);
    const struct ops *ops = backend_select_rank(a->device, m->local_rank, NULL);
    if (tp) {
        /* the group joins NCCL together: first agree every rank has a device */
        int any = ops == NULL;
        int rc = MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, tp->mpi);
        if (rc != MPI_SUCCESS) return comm_mpi_error(tp, rc, "agreeing on the devices");
        if (any) return ops ? err_set("another rank of the group has no device") : -1;
        if (backend_attach_comm(ops, tp)) return -1;
    }
    if (!ops) return -1;
    ops_cpu_set_threads(a->threads);
    se->dec = calloc(1, sizeof *se->dec);
    if (!se->dec) return err_set("out of memory");
    if (decoder_create_tp(se->dec, &m->cfg, ops, m->params, 0, tp)) {
        free(se->dec);
        se->dec = NULL;
        return -1;
    }
    struct engine_config ec = {
        .kv_cache_bytes = (size_t)(a->kv_cache_mb * 1048576.0),
        .max_batch_tokens = a->max_batch_tokens,
        .exact = a->exact,
    };
    se->eng = engine_create(se->dec, m->tok, &ec);
    if (!se->eng) {
        serve_engine_destroy(se);
        return -1;
    }
    return 0;
}

void serve_engine_destroy(struct serve_engine *se) {
    if (se->eng) engine_destroy(se->eng);
    if (se->dec) {
        decoder_destroy(se->dec);
        free(se->dec);
    }
    memset(se, 0, sizeof *se);
}

static int error_event(struct serve_buf *out, int64_t id, const char *msg) {
    struct serve_event ev = {.id = id, .kind = SERVE_EV_ERROR, .text = msg,
                             .text_len = (uint32_t)strlen(msg)};
    return serve_pack_event(out, &ev);
}

int serve_engine_submit(struct serve_engine *se, const struct serve_request *r,
                        struct serve_buf *out) {
    struct engine_request er = engine_request_defaults(se->eng);
    er.id = (uint64_t)r->id;
    er.prompt = r->prompt;
    er.n_prompt = r->n_prompt;
    er.max_tokens = r->max_tokens;
    er.sampling = (struct sampler_params){r->temperature, r->top_k, r->top_p,
                                          r->repetition_penalty, r->seed};
    er.stop = (const char *const *)r->stop;
    er.n_stop = r->n_stop;
    if (engine_submit(se->eng, &er) == 0) return 0;
    return error_event(out, r->id, err_msg());
}

void serve_step_delay(const struct serve_args *a) {
    double s = a->step_delay_s;
    if (s > 0)
        nanosleep(&(struct timespec){(time_t)s, (long)((s - (double)(time_t)s) * 1e9)}, NULL);
}

int serve_pack_pool(const struct serve_engine *se, struct serve_buf *out) {
    struct engine_stats st;
    engine_get_stats(se->eng, &st);
    struct serve_event used = {.id = SERVE_ID_POOL, .kind = SERVE_EV_POOL_USED,
                               .value = st.blocks_total - st.blocks_free};
    struct serve_event total = {.id = SERVE_ID_POOL, .kind = SERVE_EV_POOL_TOTAL,
                                .value = st.blocks_total};
    return serve_pack_event(out, &used) || serve_pack_event(out, &total) ? -1 : 0;
}

int serve_engine_step(struct serve_engine *se, struct serve_buf *out) {
    const struct engine_event *ev;
    int n;
    if (engine_step(se->eng, &ev, &n)) return -1;
    for (int i = 0; i < n; i++) {
        const struct engine_event *e = &ev[i];
        struct serve_event w = {.id = (int64_t)e->id, .text = e->text,
                                .text_len = (uint32_t)e->text_len};
        if (e->kind == ENGINE_EVENT_TOKEN) {
            w.kind = SERVE_EV_TOKEN;
            w.value = e->token;
        } else if (e->why == ENGINE_FINISH_ERROR) {
            w.kind = SERVE_EV_ERROR;
            w.text = e->error ? e->error : "engine error";
            w.text_len = (uint32_t)strlen(w.text);
        } else {
            w.kind = SERVE_EV_DONE;
            w.value = (int32_t)e->why;
        }
        if (serve_pack_event(out, &w)) return -1;
    }
    return serve_pack_pool(se, out);
}

/* The leader's inbox between two steps: the coordinator's messages, each as
 * (u32 tag, u32 length, bytes), broadcast as one buffer to the group. */
static int inbox_add(struct serve_buf *in, int tag, const void *msg, int len) {
    uint32_t h[2] = {(uint32_t)tag, (uint32_t)len};
    struct serve_buf *b = in;
    if (b->len + sizeof h + (size_t)len > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + sizeof h + (size_t)len)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) return err_set("out of memory");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, h, sizeof h);
    if (len) memcpy(b->p + b->len + sizeof h, msg, (size_t)len);
    b->len += sizeof h + (size_t)len;
    return 0;
}

/* Leader: receive one probed message from the coordinator into the inbox. */
static int receive(MPI_Status *st, struct serve_buf *in) {
    int len;
    unsigned char *msg = serve_recv_probed(st, &len);
    if (!msg) return -1;
    int rc = inbox_add(in, st->MPI_TAG, msg, len);
    free(msg);
    return rc;
}

/* Sleep while idle, a little longer each time (50 us doubling to 1 ms):
 * Open MPI's blocking calls poll (and under --oversubscribe spin on
 * sched_yield), so an idle replica blocked in MPI_Probe or a broadcast
 * would burn a core doing nothing — one per replica rank on a node shared
 * with the coordinator and its HTTP threads. Waking within 1 ms costs a
 * new request at most that. *backoff is reset to 0 when work arrives. */
static void idle_sleep(long *backoff_us) {
    *backoff_us = *backoff_us ? (*backoff_us * 2 > 1000 ? 1000 : *backoff_us * 2) : 50;
    nanosleep(&(struct timespec){0, *backoff_us * 1000}, NULL);
}

/* Leader: wait (when idle) and drain the coordinator's messages. */
static int collect(int block, struct serve_buf *in) {
    MPI_Status st;
    int flag = 0;
    long backoff = 0;
    MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
    while (block && !flag) {
        idle_sleep(&backoff);
        MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
    }
    while (flag) {
        if (receive(&st, in)) return -1;
        MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
    }
    return 0;
}

/* Every rank: the inbox's requests into the engine (refusals as events in
 * out), in order; 1 when it holds a shutdown. */
static int apply_inbox(struct serve_engine *se, const struct serve_buf *in,
                       struct serve_buf *out) {
    int shutdown = 0;
    for (size_t off = 0; off + 8 <= in->len;) {
        uint32_t h[2];
        memcpy(h, in->p + off, sizeof h);
        const unsigned char *msg = in->p + off + 8;
        off += 8 + h[1];
        if (h[0] == SERVE_TAG_SHUTDOWN) {
            shutdown = 1;
        } else if (h[0] == SERVE_TAG_CANCEL) {
            int64_t id;
            /* a request that already finished is no longer live: nothing to do */
            if (se && !serve_unpack_cancel(msg, h[1], &id)) engine_cancel(se->eng, (uint64_t)id);
        } else if (h[0] == SERVE_TAG_REQUEST) {
            struct serve_request r;
            if (serve_unpack_request(msg, h[1], &r)) {
                error_event(out, SERVE_ID_REPLICA, err_msg());
            } else {
                if (se)
                    serve_engine_submit(se, &r, out);
                else
                    error_event(out, r.id, "this replica group has failed");
                serve_request_free(&r);
            }
        }
    }
    return shutdown;
}

/* The leader's inbox to every rank of the group (T > 1). */
static int share_inbox(const struct comm *g, struct serve_buf *in) {
    /* The length without a blocking broadcast: the other ranks wait here
     * whenever the leader idles (see idle_sleep). */
    uint64_t n = in->len;
    MPI_Request rq;
    int done = 0;
    long backoff = 0;
    if (MPI_Ibcast(&n, 1, MPI_UINT64_T, 0, g->mpi, &rq) != MPI_SUCCESS)
        return err_set("replica group: broadcasting the requests failed");
    while (MPI_Test(&rq, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && !done)
        idle_sleep(&backoff);
    if (!done) return err_set("replica group: broadcasting the requests failed");
    if (n > in->cap) {
        unsigned char *p = realloc(in->p, n);
        if (!p) return err_set("out of memory");
        in->p = p;
        in->cap = n;
    }
    in->len = n;
    if (n > 0 && MPI_Bcast(in->p, (int)n, MPI_BYTE, 0, g->mpi) != MPI_SUCCESS)
        return err_set("replica group: broadcasting the requests failed");
    return 0;
}

/* Fault injection for the tests (tests/mpi/serve_test.sh, docs/serving.md):
 * LLMPI_SERVE_FAULT=G:fail:N makes replica group G report a failure after N
 * engine steps, G:hang:N makes it go silent after N steps (it neither steps
 * nor answers again, but still honours the shutdown). Unset: no fault. */
enum fault_kind { FAULT_NONE, FAULT_FAIL, FAULT_HANG };
static enum fault_kind fault_for(int group_index, long *after) {
    const char *e = getenv("LLMPI_SERVE_FAULT");
    int g;
    long n;
    char kind[8];
    if (!e || sscanf(e, "%d:%7[a-z]:%ld", &g, kind, &n) != 3 || g != group_index)
        return FAULT_NONE;
    *after = n;
    return !strcmp(kind, "fail") ? FAULT_FAIL : !strcmp(kind, "hang") ? FAULT_HANG
                                                                      : FAULT_NONE;
}

int serve_replica_run(struct serve_model *m, const struct serve_args *a,
                      struct comm *group) {
    struct serve_engine se;
    struct serve_buf out = {0}, in = {0}, sink = {0};
    struct serve_outbox ob = {0};
    const int leader = group->rank == 0, T = group->size;
    /* a group that cannot start reports it as a replica failure (id -1) and
     * then only waits for the shutdown: the coordinator serves on with the
     * others. The group agrees first, so its ranks stay in lockstep. */
    int failed = serve_engine_create(&se, m, a, T > 1 ? group : NULL) != 0;
    char why[512];
    snprintf(why, sizeof why, "rank %d: %s", group->world_rank, failed ? err_msg() : "");
    free(m->params);
    m->params = NULL;
    if (T > 1) {
        int any = failed;
        MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, group->mpi);
        if (any && !failed) serve_engine_destroy(&se);
        if (any && !failed) snprintf(why, sizeof why, "another rank of the group failed");
        failed = any;
    }
    if (failed && leader) error_event(&out, SERVE_ID_REPLICA, why);
    if (!failed && leader) serve_pack_pool(&se, &out); /* the pool's size, at once */
    long steps = 0, fault_after = 0;
    const enum fault_kind fault = fault_for((group->world_rank - 1) / T, &fault_after);
    int shutdown = 0, hung = 0;
    while (!shutdown) {
        int idle = failed || hung || engine_idle(se.eng);
        if (leader) {
            if (out.len && serve_outbox_take(&ob, 0, SERVE_TAG_EVENTS, &out)) break;
            serve_outbox_reap(&ob, 0);
            in.len = 0;
            if (collect(idle, &in)) break;
        }
        if (T > 1 && share_inbox(group, &in)) break;
        struct serve_buf *ev = leader && !hung ? &out : &sink;
        shutdown = apply_inbox(failed ? NULL : &se, &in, ev);
        sink.len = 0;
        if (shutdown || failed || hung || engine_idle(se.eng)) continue;
        if (serve_engine_step(&se, ev)) {
            failed = 1;
            if (leader) {
                out.len = 0;
                error_event(&out, SERVE_ID_REPLICA, err_msg());
            }
        }
        sink.len = 0;
        if (fault != FAULT_NONE && ++steps == fault_after) {
            hung = fault == FAULT_HANG;
            if (fault == FAULT_FAIL) {
                failed = 1;
                if (leader) error_event(&out, SERVE_ID_REPLICA, "injected failure (LLMPI_SERVE_FAULT)");
            }
        }
        serve_step_delay(a);
    }
    if (leader && out.len) serve_outbox_take(&ob, 0, SERVE_TAG_EVENTS, &out);
    serve_outbox_free(&ob);
    serve_buf_free(&out);
    serve_buf_free(&in);
    serve_buf_free(&sink);
    serve_engine_destroy(&se); /* safe after a failed create: zeroed */
    return 0;
}
