/* The linearizability search of checkers/wgl.py, compiled: same algorithm, same prunings, same verdicts.
 *
 * The pure-Python search in checkers/wgl.py is the reference; tests/unit/test_wgl_native.py compares the
 * two on every generated history. What differs is only how configurations are remembered:
 *
 * - The linearized set is not a bitset but two 64-bit Zobrist hashes (XOR of a random key per op), kept
 *   up to date in O(1) per step; a configuration is (hash1, hash2, state, after-info state), 24 bytes,
 *   whatever the history's length. No exact check follows a hit, on purpose (issue 17 asked for one or a
 *   reason): two different sets A, B share both hashes only when the keys of their symmetric difference
 *   XOR to zero in both streams, probability 2^-128 per pair with keys as good as uniform (splitmix64 is a
 *   bijective mix of a counter; the two streams start 1.8e19 counter steps apart, so no key repeats). A
 *   search remembers at most mem_limit / 24 configurations (< 2^32 even at 100 GB) and looks up fewer
 *   than 2^40 in any run one can wait for, so the chance of even one false hit in a search is below
 *   2^(32 + 40 - 128) = 2^-56. And a false hit can only prune: it can make the search skip a
 *   configuration it has not seen (at worst an "invalid" that should be "valid"), never report a
 *   linearization that does not exist (every "valid" is a complete order built and checked step by
 *   step). An exact check would need the set itself per configuration (n bits each: the O(n^2) memory
 *   the hashes remove) or a walk of O(n) per hit; neither is worth a 2^-56 risk.
 * - Model steps of the register family (read, write, cas, acquire, release) are computed here; any other
 *   op calls back into Python once per (state, op) pair and the answer is remembered.
 * - The search is resumable: run(budget) returns after at most ``budget`` steps, so the checker can
 *   interleave the partitions of a history and stop at the first invalid one.
 * - Memory is bounded: the search stops with MEMORY when its tables would pass ``mem_limit`` bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { K_CALLBACK = 0, K_READ = 1, K_WRITE = 2, K_CAS = 3, K_ACQUIRE = 4, K_RELEASE = 5, K_APPEND = 6 };
enum { RUNNING = 0, VALID = 1, INVALID = 2, MEMORY = 3, CONFIGS = 4 };
#define MAX_ENDS 16
#define SUBSUMPTION_WINDOW 32 /* applied info ops looked at per new configuration: any subset is sound */
#define DOMINATOR_WINDOW 8    /* earlier identical ops per op (pruning 2): any subset of them is sound */

typedef struct {
    uint64_t h1, h2;
    int32_t sid, after; /* sid -1: empty slot */
} Config;

typedef struct {
    int64_t key; /* sid * n + op; -1: empty */
    int32_t next;
    int32_t pad;
} Transition;

typedef struct {
    PyObject_HEAD
    int32_t n, n_ok;
    int32_t *kind, *a1, *a2;
    uint8_t *ok, *forced, *needs_nothing, *placed;
    int32_t *dom, *dom_count; /* DOMINATOR_WINDOW slots per op */
    int32_t *call, *ret;      /* kept for the symmetry masks, made only when a search needs many steps */
    long long symmetry_at;    /* the step at which to make them; -1: made (or never) */
    int32_t *nxt, *prv;
    uint64_t *z1, *z2;
    Config *configs;
    size_t cap, count;
    Transition *trans;
    size_t tcap, tcount;
    PyObject *callback;
    /* States that are strings (for APPEND): the bytes of every id, interned by content. */
    char *arena;
    size_t arena_len, arena_cap;
    size_t *str_off;
    int32_t *str_len; /* -1: the id is no string */
    uint64_t *str_hash;
    int32_t n_ids, ids_cap;
    int32_t *str_table; /* open addressing over ids, -1 empty */
    size_t str_tcap, str_count;
    uint64_t *append_pow; /* per op: HASH_BASE ** length of its appended string */
    int32_t *stack, *saved_sid, *saved_after, *info_stack;
    int32_t depth, n_info;
    uint64_t h1, h2;
    int32_t sid, after, n_done, node, init_sid;
    long long steps, n_configs, max_configs;
    int status;
    size_t mem_limit;
    int32_t fail_depth, n_ends;
    int32_t *end_prefix[MAX_ENDS];
    int32_t end_len[MAX_ENDS], end_sid[MAX_ENDS], end_op[MAX_ENDS];
} Search;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static size_t config_slot(uint64_t h1, int32_t sid, int32_t after, size_t mask) {
    uint64_t h = h1 ^ ((uint64_t)(uint32_t)sid * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)(uint32_t)(after + 1) * 0xC2B2AE3D27D4EB4FULL);
    h ^= h >> 29;
    return (size_t)h & mask;
}

static size_t memory_used(Search *s) {
    return s->cap * sizeof(Config) + s->tcap * sizeof(Transition) + s->arena_cap +
           (size_t)s->ids_cap * (sizeof(size_t) + sizeof(int32_t) + sizeof(uint64_t)) + s->str_tcap * sizeof(int32_t);
}

/* -- string states (APPEND) ------------------------------------------------------------------------------
 * A polynomial hash h(x + y) = h(x) * B^len(y) + h(y) (mod 2^64) gives the hash of a concatenation in O(1);
 * equal hashes are confirmed byte by byte, so a collision costs time, never a wrong state. */
#define HASH_BASE 0x100000001B3ULL

static uint64_t bytes_hash(const char *p, size_t len) {
    uint64_t h = 0;
    for (size_t k = 0; k < len; k++)
        h = h * HASH_BASE + (unsigned char)p[k] + 1;
    return h;
}

static uint64_t hash_pow(size_t len) {
    uint64_t r = 1, b = HASH_BASE;
    while (len) {
        if (len & 1)
            r *= b;
        b *= b;
        len >>= 1;
    }
    return r;
}

static size_t str_slot(uint64_t h, size_t mask) { return (size_t)((h ^ (h >> 31)) * 0x9E3779B97F4A7C15ULL >> 20) & mask; }

static int str_table_insert(Search *s, int32_t id) {
    size_t mask = s->str_tcap - 1, j = str_slot(s->str_hash[id], mask);
    while (s->str_table[j] >= 0)
        j = (j + 1) & mask;
    s->str_table[j] = id;
    s->str_count++;
    return 1;
}

static int str_table_grow(Search *s) {
    size_t new_cap = s->str_tcap ? s->str_tcap * 2 : 64;
    if (memory_used(s) + (new_cap - s->str_tcap) * sizeof(int32_t) > s->mem_limit)
        return 0;
    int32_t *fresh = malloc(new_cap * sizeof(int32_t));
    if (!fresh)
        return 0;
    for (size_t k = 0; k < new_cap; k++)
        fresh[k] = -1;
    free(s->str_table);
    s->str_table = fresh;
    s->str_tcap = new_cap;
    s->str_count = 0;
    for (int32_t id = 0; id < s->n_ids; id++)
        if (s->str_len[id] >= 0)
            str_table_insert(s, id);
    return 1;
}

/* Room for one more id and ``extra`` more bytes; 0 at the memory bound. */
static int str_reserve(Search *s, size_t extra) {
    if (s->n_ids == s->ids_cap) {
        int32_t new_cap = s->ids_cap ? s->ids_cap * 2 : 64;
        if (memory_used(s) + (size_t)(new_cap - s->ids_cap) * (sizeof(size_t) + 12) > s->mem_limit)
            return 0;
        size_t *off = realloc(s->str_off, sizeof(size_t) * new_cap);
        if (off) s->str_off = off;
        int32_t *len = realloc(s->str_len, sizeof(int32_t) * new_cap);
        if (len) s->str_len = len;
        uint64_t *hash = realloc(s->str_hash, sizeof(uint64_t) * new_cap);
        if (hash) s->str_hash = hash;
        if (!off || !len || !hash)
            return 0;
        s->ids_cap = new_cap;
    }
    if (s->arena_len + extra > s->arena_cap) {
        size_t new_cap = s->arena_cap ? s->arena_cap : 4096;
        while (new_cap < s->arena_len + extra)
            new_cap *= 2;
        if (memory_used(s) + (new_cap - s->arena_cap) > s->mem_limit)
            return 0;
        char *arena = realloc(s->arena, new_cap);
        if (!arena)
            return 0;
        s->arena = arena;
        s->arena_cap = new_cap;
    }
    if ((s->str_count + 1) * 10 > s->str_tcap * 7 && !str_table_grow(s))
        return 0;
    return 1;
}

/* The id of state x + y (both string ids); -3 at the memory bound. */
static int32_t append_state(Search *s, int32_t x, int32_t y, uint64_t pow_y) {
    int32_t lx = s->str_len[x], ly = s->str_len[y];
    uint64_t h = s->str_hash[x] * pow_y + s->str_hash[y];
    size_t len = (size_t)lx + ly, mask = s->str_tcap - 1, j = str_slot(h, mask);
    for (int32_t id; (id = s->str_table[j]) >= 0; j = (j + 1) & mask) {
        if (s->str_hash[id] != h || (size_t)s->str_len[id] != len)
            continue;
        const char *p = s->arena + s->str_off[id];
        if (memcmp(p, s->arena + s->str_off[x], lx) == 0 && memcmp(p + lx, s->arena + s->str_off[y], ly) == 0)
            return id;
    }
    if (len > INT32_MAX || !str_reserve(s, len))
        return -3;
    int32_t id = s->n_ids++;
    char *out = s->arena + s->arena_len;
    memcpy(out, s->arena + s->str_off[x], lx); /* after str_reserve: the arena may have moved */
    memcpy(out + lx, s->arena + s->str_off[y], ly);
    s->str_off[id] = s->arena_len;
    s->str_len[id] = (int32_t)len;
    s->str_hash[id] = h;
    s->arena_len += len;
    str_table_insert(s, id);
    return id;
}

/* The initial ids: strings[id] is bytes (UTF-8) or None. */
static int init_strings(Search *s, PyObject *strings) {
    PyObject *fast = PySequence_Fast(strings, "strings");
    if (!fast)
        return 0;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(fast);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    size_t total = 0;
    for (Py_ssize_t k = 0; k < m; k++)
        if (PyBytes_Check(items[k]))
            total += PyBytes_GET_SIZE(items[k]);
    s->mem_limit += total + 64 * (size_t)m; /* the history's own values do not count against the search */
    for (Py_ssize_t k = 0; k < m; k++) {
        if (!str_reserve(s, PyBytes_Check(items[k]) ? PyBytes_GET_SIZE(items[k]) : 0)) {
            Py_DECREF(fast);
            PyErr_NoMemory();
            return 0;
        }
        int32_t id = s->n_ids++;
        if (!PyBytes_Check(items[k])) {
            s->str_len[id] = -1;
            s->str_off[id] = 0;
            s->str_hash[id] = 0;
            continue;
        }
        Py_ssize_t len = PyBytes_GET_SIZE(items[k]);
        memcpy(s->arena + s->arena_len, PyBytes_AS_STRING(items[k]), len);
        s->str_off[id] = s->arena_len;
        s->str_len[id] = (int32_t)len;
        s->str_hash[id] = bytes_hash(PyBytes_AS_STRING(items[k]), len);
        s->arena_len += len;
        /* equal initial strings keep their first id: Python interned them by value already */
        str_table_insert(s, id);
    }
    Py_DECREF(fast);
    return 1;
}

/* Grow the configuration table to twice its size; 0 when the memory bound forbids it. */
static int grow_configs(Search *s) {
    size_t new_cap = s->cap * 2;
    if (memory_used(s) + (new_cap - s->cap) * sizeof(Config) > s->mem_limit)
        return 0;
    Config *fresh = malloc(new_cap * sizeof(Config));
    if (!fresh)
        return 0;
    for (size_t k = 0; k < new_cap; k++)
        fresh[k].sid = -1;
    size_t mask = new_cap - 1;
    for (size_t k = 0; k < s->cap; k++) {
        Config *c = &s->configs[k];
        if (c->sid < 0)
            continue;
        size_t j = config_slot(c->h1, c->sid, c->after, mask);
        while (fresh[j].sid >= 0)
            j = (j + 1) & mask;
        fresh[j] = *c;
    }
    free(s->configs);
    s->configs = fresh;
    s->cap = new_cap;
    return 1;
}

static int config_seen(Search *s, uint64_t h1, uint64_t h2, int32_t sid, int32_t after) {
    size_t mask = s->cap - 1;
    size_t j = config_slot(h1, sid, after, mask);
    for (;;) {
        Config *c = &s->configs[j];
        if (c->sid < 0)
            return 0;
        if (c->h1 == h1 && c->h2 == h2 && c->sid == sid && c->after == after)
            return 1;
        j = (j + 1) & mask;
    }
}

/* Remember a configuration known to be new; 0 when the memory bound is reached. */
static int config_add(Search *s, uint64_t h1, uint64_t h2, int32_t sid, int32_t after) {
    if ((s->count + 1) * 10 > s->cap * 7 && !grow_configs(s))
        return 0;
    size_t mask = s->cap - 1;
    size_t j = config_slot(h1, sid, after, mask);
    while (s->configs[j].sid >= 0)
        j = (j + 1) & mask;
    Config *c = &s->configs[j];
    c->h1 = h1;
    c->h2 = h2;
    c->sid = sid;
    c->after = after;
    s->count++;
    return 1;
}

static int grow_transitions(Search *s) {
    size_t new_cap = s->tcap * 2;
    if (memory_used(s) + (new_cap - s->tcap) * sizeof(Transition) > s->mem_limit)
        return 0;
    Transition *fresh = malloc(new_cap * sizeof(Transition));
    if (!fresh)
        return 0;
    for (size_t k = 0; k < new_cap; k++)
        fresh[k].key = -1;
    size_t mask = new_cap - 1;
    for (size_t k = 0; k < s->tcap; k++) {
        Transition *t = &s->trans[k];
        if (t->key < 0)
            continue;
        uint64_t h = (uint64_t)t->key * 0x9E3779B97F4A7C15ULL;
        size_t j = (size_t)(h >> 17) & mask;
        while (fresh[j].key >= 0)
            j = (j + 1) & mask;
        fresh[j] = *t;
    }
    free(s->trans);
    s->trans = fresh;
    s->tcap = new_cap;
    return 1;
}

/* The state after op i from state sid, -1 when illegal; -2 on a Python error, -3 at the memory bound. */
static int32_t next_state(Search *s, int32_t sid, int32_t i) {
    int32_t a = s->a1[i];
    switch (s->kind[i]) {
    case K_READ:
        return sid == a ? sid : -1;
    case K_WRITE:
        return a;
    case K_CAS:
        return sid == a ? s->a2[i] : -1;
    case K_ACQUIRE: /* a2: the id of "free" */
        return sid == s->a2[i] ? a : -1;
    case K_RELEASE: /* a1 -1: anyone may release */
        return (sid != s->a2[i] && (a < 0 || sid == a)) ? s->a2[i] : -1;
    default:
        break;
    }
    int64_t key = (int64_t)sid * s->n + i;
    size_t mask = s->tcap - 1;
    size_t j = (size_t)(((uint64_t)key * 0x9E3779B97F4A7C15ULL) >> 17) & mask;
    while (s->trans[j].key >= 0) {
        if (s->trans[j].key == key)
            return s->trans[j].next;
        j = (j + 1) & mask;
    }
    long v;
    if (s->kind[i] == K_APPEND) {
        if (sid >= s->n_ids || s->str_len[sid] < 0) {
            PyErr_SetString(PyExc_ValueError, "append to a state that is not a string");
            return -2;
        }
        v = append_state(s, sid, a, s->append_pow[i]);
        if (v == -3)
            return -3;
    } else {
        PyObject *r = PyObject_CallFunction(s->callback, "ii", (int)sid, (int)i);
        if (!r)
            return -2;
        v = PyLong_AsLong(r);
        Py_DECREF(r);
        if (v == -1 && PyErr_Occurred())
            return -2;
    }
    if ((s->tcount + 1) * 10 > s->tcap * 7) {
        if (!grow_transitions(s))
            return -3;
        mask = s->tcap - 1;
        j = (size_t)(((uint64_t)key * 0x9E3779B97F4A7C15ULL) >> 17) & mask;
        while (s->trans[j].key >= 0)
            j = (j + 1) & mask;
    }
    s->trans[j].key = key;
    s->trans[j].next = (int32_t)v;
    s->tcount++;
    return (int32_t)v;
}

static void record_end(Search *s, int32_t sid, int32_t op) {
    int32_t depth = s->depth;
    if (depth < s->fail_depth)
        return;
    if (depth > s->fail_depth) {
        s->fail_depth = depth;
        for (int k = 0; k < s->n_ends; k++)
            free(s->end_prefix[k]);
        s->n_ends = 0;
    }
    if (s->n_ends >= MAX_ENDS)
        return;
    int32_t *copy = malloc(sizeof(int32_t) * (depth ? depth : 1));
    if (!copy)
        return; /* an explanation with fewer ends: never a different verdict */
    memcpy(copy, s->stack, sizeof(int32_t) * depth);
    s->end_prefix[s->n_ends] = copy;
    s->end_len[s->n_ends] = depth;
    s->end_sid[s->n_ends] = sid;
    s->end_op[s->n_ends] = op;
    s->n_ends++;
}

static int build_dominators(Search *s);

/* The search loop of wgl.py's _search, resumable: at most ``budget`` steps, then RUNNING.
 * Most searches are decided in a few steps per op, where the symmetry masks (pruning 2) cost more than
 * they save: they are made once a search passes ``symmetry_at`` steps (switching the pruning on midway is
 * sound: it is complete from any configuration, and what was remembered before stays true). */
static int search_run(Search *s, long long budget) {
    const int32_t n = s->n, head = 2 * n;
    int32_t *nxt = s->nxt, *prv = s->prv;
    const uint8_t *ok = s->ok, *forced = s->forced, *needs_nothing = s->needs_nothing;
    uint8_t *placed = s->placed;
    int32_t node = s->node, sid = s->sid, after = s->after;
    uint64_t h1 = s->h1, h2 = s->h2;
    long long steps = s->steps, stop_at = s->steps + budget;
    long long limit = s->symmetry_at >= 0 && s->symmetry_at < stop_at ? s->symmetry_at : stop_at;
    int status = RUNNING;

    for (;;) {
        if (steps >= limit) {
            if (steps >= stop_at)
                break;
            s->symmetry_at = -1;
            if (!build_dominators(s)) {
                PyErr_NoMemory();
                status = -1;
                break;
            }
            limit = stop_at;
        }
        steps++;
        int backtrack = 0;
        if (node < n) {
            int32_t i = node;
            int32_t nd = s->dom_count[i];
            if (nd) {
                const int32_t *d = s->dom + (size_t)i * DOMINATOR_WINDOW;
                int all = 1;
                for (int32_t k = 0; k < nd; k++)
                    if (!placed[d[k]]) {
                        all = 0;
                        break;
                    }
                if (!all) {
                    node = nxt[node];
                    continue;
                }
            }
            if (after >= 0 && needs_nothing[i]) {
                int32_t before = next_state(s, after, i);
                if (before <= -2) {
                    status = before == -2 ? -1 : MEMORY;
                    break;
                }
                if (before >= 0) { /* legal without the info op just placed: that op was not needed */
                    node = nxt[node];
                    continue;
                }
            }
            int32_t ns = next_state(s, sid, i);
            if (ns <= -2) {
                status = ns == -2 ? -1 : MEMORY;
                break;
            }
            if (ns >= 0 && !(ns == sid && !ok[i])) {
                uint64_t n1 = h1 ^ s->z1[i], n2 = h2 ^ s->z2[i];
                int32_t new_after = ok[i] ? -1 : sid;
                int fresh;
                if (config_seen(s, n1, n2, ns, new_after)) {
                    fresh = 0;
                } else {
                    /* Subsumption (pruning 5): the same completed ops and state with one applied info
                     * op fewer was explored already. */
                    fresh = 1;
                    if (!ok[i] && config_seen(s, h1, h2, ns, new_after))
                        fresh = 0;
                    for (int32_t k = s->n_info - 1; fresh && k >= 0 && k >= s->n_info - SUBSUMPTION_WINDOW; k--) {
                        int32_t b = s->info_stack[k];
                        if (config_seen(s, n1 ^ s->z1[b], n2 ^ s->z2[b], ns, new_after))
                            fresh = 0;
                    }
                    if (!config_add(s, n1, n2, ns, new_after)) {
                        status = MEMORY;
                        break;
                    }
                }
                if (fresh) {
                    s->n_configs++;
                    int32_t depth = s->depth++;
                    s->stack[depth] = i;
                    s->saved_sid[depth] = sid;
                    s->saved_after[depth] = after;
                    placed[i] = 1;
                    h1 = n1;
                    h2 = n2;
                    sid = ns;
                    after = new_after;
                    int32_t p = prv[i], q = nxt[i];
                    nxt[p] = q;
                    prv[q] = p;
                    if (ok[i]) {
                        int32_t r = n + i;
                        p = prv[r];
                        q = nxt[r];
                        nxt[p] = q;
                        prv[q] = p;
                        if (++s->n_done == s->n_ok) {
                            status = VALID;
                            break;
                        }
                    } else {
                        s->info_stack[s->n_info++] = i;
                    }
                    if (s->max_configs >= 0 && s->n_configs > s->max_configs) {
                        status = CONFIGS;
                        break;
                    }
                    node = nxt[head];
                    continue;
                }
                if (!forced[i]) {
                    node = nxt[node];
                    continue;
                }
                backtrack = 1; /* a forced placement whose configuration failed before fails again */
            } else {
                node = nxt[node];
                continue;
            }
        } else {
            if (node < 2 * n) /* a return whose op is not placed (the tail is never reached: see wgl.py) */
                record_end(s, sid, node - n);
            backtrack = 1;
        }
        if (backtrack) {
            for (;;) {
                if (s->depth == 0) {
                    status = INVALID;
                    break;
                }
                int32_t depth = --s->depth;
                int32_t i = s->stack[depth];
                sid = s->saved_sid[depth];
                after = s->saved_after[depth];
                placed[i] = 0;
                h1 ^= s->z1[i];
                h2 ^= s->z2[i];
                if (ok[i]) {
                    int32_t r = n + i;
                    nxt[prv[r]] = r;
                    prv[nxt[r]] = r;
                    s->n_done--;
                } else {
                    s->n_info--;
                }
                nxt[prv[i]] = i;
                prv[nxt[i]] = i;
                if (!forced[i]) {
                    node = nxt[i];
                    break;
                }
            }
            if (status != RUNNING)
                break;
        }
    }
    s->node = node;
    s->sid = sid;
    s->after = after;
    s->h1 = h1;
    s->h2 = h2;
    s->steps = steps;
    return status;
}

/* -- the Python type ----------------------------------------------------------------------------------- */

static void Search_dealloc(Search *s) {
    free(s->kind); free(s->a1); free(s->a2);
    free(s->ok); free(s->forced); free(s->needs_nothing); free(s->placed);
    free(s->dom); free(s->dom_count); free(s->call); free(s->ret);
    free(s->nxt); free(s->prv); free(s->z1); free(s->z2);
    free(s->configs); free(s->trans);
    free(s->arena); free(s->str_off); free(s->str_len); free(s->str_hash); free(s->str_table); free(s->append_pow);
    free(s->stack); free(s->saved_sid); free(s->saved_after); free(s->info_stack);
    for (int k = 0; k < s->n_ends; k++)
        free(s->end_prefix[k]);
    Py_XDECREF(s->callback);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static int fill_int32(PyObject *seq, int32_t *out, Py_ssize_t n, const char *what) {
    PyObject *fast = PySequence_Fast(seq, what);
    if (!fast)
        return 0;
    if (PySequence_Fast_GET_SIZE(fast) != n) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd items", what, n);
        Py_DECREF(fast);
        return 0;
    }
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t k = 0; k < n; k++) {
        long v = PyLong_AsLong(items[k]);
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return 0;
        }
        out[k] = (int32_t)v;
    }
    Py_DECREF(fast);
    return 1;
}

static int cmp_int64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Every call and return as (position << 1 | is_return) << 28 | op, in position order. Calls come in op
 * order, already sorted; returns nearly so (ops overlap a few at a time): an insertion sort, or qsort
 * when that would take long, then a merge. -1 when out of memory. */
static int32_t events_in_order(Search *s, const int32_t *call, const int32_t *ret, int64_t *events) {
    int32_t n = s->n, n_ret = 0;
    int calls_sorted = 1;
    for (int32_t i = 1; i < n; i++)
        if (call[i] < call[i - 1])
            calls_sorted = 0;
    if (!calls_sorted) {
        int32_t m = 0;
        for (int32_t i = 0; i < n; i++) {
            events[m++] = ((int64_t)call[i] << 1) << 28 | i;
            if (s->ok[i])
                events[m++] = (((int64_t)ret[i] << 1) | 1) << 28 | i;
        }
        qsort(events, m, sizeof(int64_t), cmp_int64);
        return m;
    }
    int64_t *rets = malloc(sizeof(int64_t) * (n ? n : 1));
    if (!rets)
        return -1;
    long long moves = 0, max_moves = 16LL * n + 1024;
    for (int32_t i = 0; i < n; i++) {
        if (!s->ok[i])
            continue;
        int64_t e = (((int64_t)ret[i] << 1) | 1) << 28 | i;
        int32_t k = n_ret++;
        while (k > 0 && rets[k - 1] > e && moves < max_moves) {
            rets[k] = rets[k - 1];
            k--;
            moves++;
        }
        rets[k] = e;
    }
    if (moves >= max_moves)
        qsort(rets, n_ret, sizeof(int64_t), cmp_int64);
    int32_t m = 0, c = 0, r = 0;
    while (c < n || r < n_ret) {
        int64_t ce = c < n ? ((int64_t)call[c] << 1) << 28 | c : INT64_MAX;
        if (r < n_ret && rets[r] < ce)
            events[m++] = rets[r++];
        else {
            events[m++] = ce;
            c++;
        }
    }
    free(rets);
    return m;
}

typedef struct {
    int32_t kind, a1, a2, ok, call, ret, op;
} IdentityRow;

static int cmp_identity(const void *pa, const void *pb) {
    const IdentityRow *a = pa, *b = pb;
    if (a->kind != b->kind) return a->kind < b->kind ? -1 : 1;
    if (a->a1 != b->a1) return a->a1 < b->a1 ? -1 : 1;
    if (a->a2 != b->a2) return a->a2 < b->a2 ? -1 : 1;
    if (a->ok != b->ok) return a->ok < b->ok ? -1 : 1;
    if (a->call != b->call) return a->call < b->call ? -1 : 1;
    return 0;
}

/* Pruning 2: per op, up to DOMINATOR_WINDOW earlier identical ops (same kind, arguments, outcome) whose
 * call and return both come first. A callback op's a1 is its identity class, given by Python. */
static int build_dominators(Search *s) {
    int32_t n = s->n;
    const int32_t *call = s->call, *ret = s->ret;
    IdentityRow *rows = malloc(sizeof(IdentityRow) * (n ? n : 1));
    if (!rows)
        return 0;
    for (int32_t i = 0; i < n; i++) {
        rows[i].kind = s->kind[i];
        rows[i].a1 = s->a1[i];
        rows[i].a2 = (s->kind[i] == K_CALLBACK || s->kind[i] == K_APPEND) ? 0 : s->a2[i];
        rows[i].ok = s->ok[i];
        rows[i].call = call[i];
        rows[i].ret = s->ok[i] ? ret[i] : INT32_MAX;
        rows[i].op = i;
    }
    qsort(rows, n, sizeof(IdentityRow), cmp_identity);
    for (int32_t k = 0; k < n; k++) {
        int32_t b = rows[k].op, count = 0;
        for (int32_t m = k - 1; m >= 0 && m >= k - DOMINATOR_WINDOW; m--) {
            IdentityRow *r = &rows[m];
            if (r->kind != rows[k].kind || r->a1 != rows[k].a1 || r->a2 != rows[k].a2 || r->ok != rows[k].ok)
                break;
            if (r->ret < rows[k].ret || (r->ret == INT32_MAX && rows[k].ret == INT32_MAX))
                s->dom[(size_t)b * DOMINATOR_WINDOW + count++] = r->op;
        }
        s->dom_count[b] = count;
    }
    free(rows);
    return 1;
}

/* Search(kind, a1, a2, call, ret, init, callback, mem_limit, max_configs, symmetry, strings)
 * ret[i] < 0: op i is indeterminate (no return event). Positions are history indices (all distinct).
 * A CALLBACK op's a1 is its identity class (pruning 2), its a2 flags: 1 read-only, 2 overwrites.
 * strings (for APPEND ops; else None): per initial id its UTF-8 bytes, or None when it is no string. */
static PyObject *Search_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *kind, *a1, *a2, *call_seq, *ret_seq, *callback, *strings = Py_None;
    int init, symmetry;
    unsigned long long mem_limit;
    long long max_configs;
    if (!PyArg_ParseTuple(args, "OOOOOiOKLp|O", &kind, &a1, &a2, &call_seq, &ret_seq, &init, &callback,
                          &mem_limit, &max_configs, &symmetry, &strings))
        return NULL;
    Py_ssize_t len = PySequence_Size(kind);
    if (len < 0)
        return NULL;
    if (len >= (1 << 28)) {
        PyErr_SetString(PyExc_ValueError, "too many operations for one partition");
        return NULL;
    }
    Search *s = (Search *)type->tp_alloc(type, 0);
    if (!s)
        return NULL;
    int32_t n = (int32_t)len;
    s->n = n;
    size_t nn = n ? n : 1;
    s->kind = malloc(4 * nn); s->a1 = malloc(4 * nn); s->a2 = malloc(4 * nn);
    s->ok = calloc(nn, 1); s->forced = calloc(nn, 1); s->needs_nothing = calloc(nn, 1); s->placed = calloc(nn, 1);
    s->dom = malloc(4 * nn * DOMINATOR_WINDOW); s->dom_count = calloc(nn, 4);
    s->nxt = malloc(4 * (2 * nn + 2)); s->prv = malloc(4 * (2 * nn + 2));
    s->z1 = malloc(8 * nn); s->z2 = malloc(8 * nn);
    s->stack = malloc(4 * nn); s->saved_sid = malloc(4 * nn); s->saved_after = malloc(4 * nn);
    s->info_stack = malloc(4 * nn);
    s->cap = 64; /* grown as needed: most partitions are small */
    while (s->cap < 4 * nn && s->cap < (1u << 16))
        s->cap *= 2;
    s->configs = malloc(sizeof(Config) * s->cap);
    s->tcap = 64;
    s->trans = malloc(sizeof(Transition) * s->tcap);
    int32_t *call = s->call = malloc(4 * nn), *ret = s->ret = malloc(4 * nn), *flags = malloc(4 * nn);
    int64_t *events = malloc(8 * (2 * nn));
    if (!s->kind || !s->a1 || !s->a2 || !s->ok || !s->forced || !s->needs_nothing || !s->placed || !s->dom ||
        !s->dom_count || !s->nxt || !s->prv || !s->z1 || !s->z2 || !s->stack || !s->saved_sid ||
        !s->saved_after || !s->info_stack || !s->configs || !s->trans || !call || !ret || !flags || !events) {
        PyErr_NoMemory();
        goto fail;
    }
    for (size_t k = 0; k < s->cap; k++)
        s->configs[k].sid = -1;
    for (size_t k = 0; k < s->tcap; k++)
        s->trans[k].key = -1;
    if (!fill_int32(kind, s->kind, n, "kind") || !fill_int32(a1, s->a1, n, "a1") || !fill_int32(a2, s->a2, n, "a2") ||
        !fill_int32(call_seq, call, n, "call") || !fill_int32(ret_seq, ret, n, "ret"))
        goto fail;
    for (int32_t i = 0; i < n; i++) {
        int32_t k = s->kind[i];
        int read_only = k == K_READ || (k == K_CALLBACK && (s->a2[i] & 1));
        int overwrites = k == K_WRITE || k == K_CAS || k == K_ACQUIRE || k == K_RELEASE ||
                         (k == K_CALLBACK && (s->a2[i] & 2));
        s->ok[i] = ret[i] >= 0;
        s->n_ok += s->ok[i];
        s->forced[i] = read_only && s->ok[i];
        s->needs_nothing[i] = read_only || overwrites;
    }
    Py_INCREF(callback);
    s->callback = callback;
    s->mem_limit = (size_t)mem_limit;
    s->max_configs = max_configs;
    s->sid = s->init_sid = init;
    s->after = -1;
    s->fail_depth = -1;
    uint64_t seed1 = 0x243F6A8885A308D3ULL, seed2 = 0x13198A2E03707344ULL;
    for (int32_t i = 0; i < n; i++) {
        s->z1[i] = splitmix64(&seed1);
        s->z2[i] = splitmix64(&seed2);
    }
    if (strings != Py_None) {
        if (!init_strings(s, strings))
            goto fail;
        s->append_pow = malloc(8 * nn);
        if (!s->append_pow) {
            PyErr_NoMemory();
            goto fail;
        }
        for (int32_t i = 0; i < n; i++) {
            s->append_pow[i] = 1;
            if (s->kind[i] != K_APPEND)
                continue;
            if (s->a1[i] < 0 || s->a1[i] >= s->n_ids || s->str_len[s->a1[i]] < 0) {
                PyErr_SetString(PyExc_ValueError, "an APPEND op's value is not one of the strings");
                goto fail;
            }
            s->append_pow[i] = hash_pow(s->str_len[s->a1[i]]);
        }
    } else {
        for (int32_t i = 0; i < n; i++)
            if (s->kind[i] == K_APPEND) {
                PyErr_SetString(PyExc_ValueError, "APPEND ops need the strings of the initial ids");
                goto fail;
            }
    }
    s->symmetry_at = symmetry ? 8LL * n + 64 : -1;

    /* Events in history order (a call sorts before a return at the same position: they never tie);
     * within a run of calls with no return between them, forced ops (reads) first (pruning 4). */
    int32_t n_events = events_in_order(s, call, ret, events);
    if (n_events < 0) {
        PyErr_NoMemory();
        goto fail;
    }
    int32_t head = 2 * n, tail = 2 * n + 1, prev = head, run_start = 0;
    int32_t *order = flags; /* reused: the calls of the current run */
    for (int32_t e = 0; e <= n_events; e++) {
        int is_return = e < n_events && ((events[e] >> 28) & 1);
        if (e < n_events && !is_return) {
            order[run_start++] = (int32_t)(events[e] & ((1 << 28) - 1));
            continue;
        }
        for (int pass = 0; pass < 2; pass++)
            for (int32_t k = 0; k < run_start; k++) {
                int32_t i = order[k];
                if ((pass == 0) == (s->forced[i] != 0)) {
                    s->nxt[prev] = i;
                    s->prv[i] = prev;
                    prev = i;
                }
            }
        run_start = 0;
        if (e < n_events) {
            int32_t r = n + (int32_t)(events[e] & ((1 << 28) - 1));
            s->nxt[prev] = r;
            s->prv[r] = prev;
            prev = r;
        }
    }
    s->nxt[prev] = tail;
    s->prv[tail] = prev;
    s->prv[head] = head;
    s->nxt[tail] = tail;
    s->node = s->nxt[head];
    if (s->n_ok == 0)
        s->status = VALID;
    free(flags); free(events);
    return (PyObject *)s;
fail:
    free(flags); free(events);
    Py_DECREF(s);
    return NULL;
}

static PyObject *Search_run(Search *s, PyObject *arg) {
    long long budget = PyLong_AsLongLong(arg);
    if (budget == -1 && PyErr_Occurred())
        return NULL;
    if (s->status == RUNNING) {
        int status = search_run(s, budget);
        if (status < 0)
            return NULL; /* the model's step raised */
        s->status = status;
    }
    return PyLong_FromLong(s->status);
}

static PyObject *Search_failure(Search *s, PyObject *Py_UNUSED(ignored)) {
    PyObject *ends = PyList_New(0);
    if (!ends)
        return NULL;
    for (int k = 0; k < s->n_ends; k++) {
        PyObject *prefix = PyTuple_New(s->end_len[k]);
        if (!prefix)
            goto fail;
        for (int32_t m = 0; m < s->end_len[k]; m++)
            PyTuple_SET_ITEM(prefix, m, PyLong_FromLong(s->end_prefix[k][m]));
        PyObject *row = Py_BuildValue("(Nii)", prefix, (int)s->end_sid[k], (int)s->end_op[k]);
        if (!row || PyList_Append(ends, row) < 0) {
            Py_XDECREF(row);
            goto fail;
        }
        Py_DECREF(row);
    }
    return Py_BuildValue("(iN)", (int)s->fail_depth, ends);
fail:
    Py_DECREF(ends);
    return NULL;
}

static PyObject *Search_order(Search *s, PyObject *Py_UNUSED(ignored)) {
    PyObject *t = PyTuple_New(s->depth);
    if (!t)
        return NULL;
    for (int32_t m = 0; m < s->depth; m++)
        PyTuple_SET_ITEM(t, m, PyLong_FromLong(s->stack[m]));
    return t;
}

/* replay(prefix): the state id after each op of ``prefix`` (a sequence of op numbers), placed in that
 * order from the initial state; -1 from the first op that is illegal there on. */
static PyObject *Search_replay(Search *s, PyObject *arg) {
    PyObject *fast = PySequence_Fast(arg, "prefix");
    if (!fast)
        return NULL;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(fast);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    PyObject *out = PyList_New(m);
    int32_t sid = s->init_sid;
    for (Py_ssize_t k = 0; out && k < m; k++) {
        long i = PyLong_AsLong(items[k]);
        if (i == -1 && PyErr_Occurred()) {
            Py_CLEAR(out);
            break;
        }
        if (i < 0 || i >= s->n) {
            PyErr_SetString(PyExc_IndexError, "no op with that number");
            Py_CLEAR(out);
            break;
        }
        if (sid >= 0) {
            sid = next_state(s, sid, (int32_t)i);
            if (sid <= -2) {
                if (sid == -3)
                    PyErr_NoMemory();
                Py_CLEAR(out);
                break;
            }
        }
        PyList_SET_ITEM(out, k, PyLong_FromLong(sid));
    }
    Py_DECREF(fast);
    return out;
}

static PyObject *Search_string(Search *s, PyObject *arg) {
    long id = PyLong_AsLong(arg);
    if (id == -1 && PyErr_Occurred())
        return NULL;
    if (id < 0 || id >= s->n_ids || s->str_len[id] < 0) {
        PyErr_SetString(PyExc_IndexError, "no string state with that id");
        return NULL;
    }
    return PyUnicode_DecodeUTF8(s->arena + s->str_off[id], s->str_len[id], "strict");
}

static PyObject *Search_get_steps(Search *s, void *c) { return PyLong_FromLongLong(s->steps); }
static PyObject *Search_get_configs(Search *s, void *c) { return PyLong_FromLongLong(s->n_configs); }
static PyObject *Search_get_status(Search *s, void *c) { return PyLong_FromLong(s->status); }
static PyObject *Search_get_memory(Search *s, void *c) { return PyLong_FromSize_t(memory_used(s)); }
static PyObject *Search_get_ids(Search *s, void *c) { return PyLong_FromLong(s->n_ids); }

static PyMethodDef Search_methods[] = {
    {"run", (PyCFunction)Search_run, METH_O, "run(budget) -> status: search at most budget more steps"},
    {"failure", (PyCFunction)Search_failure, METH_NOARGS, "(depth, [(prefix, state id, blocked op)])"},
    {"order", (PyCFunction)Search_order, METH_NOARGS, "the ops placed so far, in order (the linearization when valid)"},
    {"string", (PyCFunction)Search_string, METH_O, "string(id): the string state with that id (APPEND)"},
    {"replay", (PyCFunction)Search_replay, METH_O, "replay(prefix): the state id after each op of prefix"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Search_getset[] = {
    {"steps", (getter)Search_get_steps, NULL, "search steps taken", NULL},
    {"configs", (getter)Search_get_configs, NULL, "configurations explored", NULL},
    {"status", (getter)Search_get_status, NULL, "RUNNING, VALID, INVALID, MEMORY or CONFIGS", NULL},
    {"memory", (getter)Search_get_memory, NULL, "bytes held by the search's tables", NULL},
    {"string_ids", (getter)Search_get_ids, NULL, "ids with a string state known (APPEND)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject SearchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "splitbrain.checkers._wgl.Search",
    .tp_basicsize = sizeof(Search),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A resumable linearizability search over one partition.",
    .tp_new = Search_new,
    .tp_dealloc = (destructor)Search_dealloc,
    .tp_methods = Search_methods,
    .tp_getset = Search_getset,
};

/* -- the register family's ops, compiled here (on small histories the Python loop was most of a check) --
 *
 * register_ops(operations, kind_of_f, nil_reads_unknown, sid_of, states, hashable)
 *   -> (ops, kinds, a1, a2, calls, rets), or None when an op needs the model's Python code to say what is
 *      wrong with it (an unknown f, a cas without [old, new], an index out of range): the caller then runs
 *      the model's own compile, which raises the error or handles the rare case. Nothing is interned then.
 * What it does is exactly Register.compile after dropping failed ops (checkers/models.py), with the
 * positions of NativeSearch: calls[i] and rets[i] relative to the first op's call, rets[i] -1 unless ok. */
#define OP_INDEX 0
#define OP_TYPE 1
#define OP_F 3
#define OP_VALUE 4
#define OP_FIELDS 9

static int is_scalar(PyObject *v) {
    return v == Py_None || PyLong_CheckExact(v) || PyUnicode_CheckExact(v) || PyFloat_CheckExact(v) || PyBool_Check(v);
}

/* The id of value v (made hashable first, as models.hashable does); -1 on a Python error. */
static long intern_value(PyObject *v, PyObject *sid_of, PyObject *states, PyObject *hashable) {
    PyObject *key;
    if (is_scalar(v)) {
        Py_INCREF(v);
        key = v;
    } else {
        key = PyObject_CallOneArg(hashable, v);
        if (!key)
            return -1;
    }
    PyObject *found = PyDict_GetItemWithError(sid_of, key);
    long id;
    if (found) {
        id = PyLong_AsLong(found);
    } else if (PyErr_Occurred()) {
        id = -1;
    } else {
        id = (long)PyList_GET_SIZE(states);
        PyObject *boxed = PyLong_FromLong(id);
        if (!boxed || PyDict_SetItem(sid_of, key, boxed) < 0 || PyList_Append(states, key) < 0)
            id = -1;
        Py_XDECREF(boxed);
    }
    Py_DECREF(key);
    return id;
}

static int is_op(PyObject *o) { return PyTuple_Check(o) && PyTuple_GET_SIZE(o) >= OP_FIELDS; }

static int type_is(PyObject *op, const char *name) {
    PyObject *t = PyTuple_GET_ITEM(op, OP_TYPE);
    return PyUnicode_Check(t) && PyUnicode_CompareWithASCIIString(t, name) == 0;
}

static int append_long(PyObject *list, long v) {
    PyObject *boxed = PyLong_FromLong(v);
    if (!boxed)
        return -1;
    int r = PyList_Append(list, boxed);
    Py_DECREF(boxed);
    return r;
}

static PyObject *register_ops(PyObject *module, PyObject *args) {
    PyObject *operations, *kind_of_f, *sid_of, *states, *hashable;
    int nil_unknown;
    if (!PyArg_ParseTuple(args, "OO!pO!O!O", &operations, &PyDict_Type, &kind_of_f, &nil_unknown, &PyDict_Type,
                          &sid_of, &PyList_Type, &states, &hashable))
        return NULL;
    PyObject *fast = PySequence_Fast(operations, "operations");
    if (!fast)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast), known = PyList_GET_SIZE(states);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    PyObject *ops = PyList_New(0), *kinds = PyList_New(0), *a1 = PyList_New(0), *a2 = PyList_New(0);
    PyObject *calls = PyList_New(0), *rets = PyList_New(0);
    PyObject *result = NULL;
    int fallback = 0;
    long long base = 0;
    if (!ops || !kinds || !a1 || !a2 || !calls || !rets)
        goto done;
    for (Py_ssize_t k = 0; k < n && !fallback; k++) {
        PyObject *operation = items[k];
        if (!PyTuple_Check(operation) || PyTuple_GET_SIZE(operation) != 2) {
            fallback = 1;
            break;
        }
        PyObject *invoke = PyTuple_GET_ITEM(operation, 0), *completion = PyTuple_GET_ITEM(operation, 1);
        if (!is_op(invoke) || (completion != Py_None && !is_op(completion))) {
            fallback = 1;
            break;
        }
        int ok = completion != Py_None && type_is(completion, "ok");
        if (completion != Py_None && type_is(completion, "fail"))
            continue; /* definitely did not happen */
        PyObject *kind_obj = PyDict_GetItemWithError(kind_of_f, PyTuple_GET_ITEM(invoke, OP_F));
        if (!kind_obj) {
            PyErr_Clear(); /* an unknown (or unhashable) f: the model's compile says so */
            fallback = 1;
            break;
        }
        long kind = PyLong_AsLong(kind_obj), x = 0, y = 0;
        PyObject *value = PyTuple_GET_ITEM(invoke, OP_VALUE);
        if (kind == K_READ) {
            if (!ok)
                continue; /* an indeterminate read constrains nothing */
            value = PyTuple_GET_ITEM(completion, OP_VALUE);
            if (value == Py_None && nil_unknown)
                continue;
            x = intern_value(value, sid_of, states, hashable);
        } else if (kind == K_WRITE || kind == K_APPEND) {
            x = intern_value(value, sid_of, states, hashable);
        } else if (kind == K_CAS) {
            if (!(PyList_Check(value) || PyTuple_Check(value)) || PySequence_Fast_GET_SIZE(value) != 2) {
                fallback = 1;
                break;
            }
            PyObject **pair = PySequence_Fast_ITEMS(value);
            x = intern_value(pair[0], sid_of, states, hashable);
            if (x >= 0)
                y = intern_value(pair[1], sid_of, states, hashable);
        } else {
            fallback = 1;
            break;
        }
        if (x < 0 || y < 0)
            goto done; /* a Python error (an unhashable value): raised as the model's compile would */
        long long call = PyLong_AsLongLong(PyTuple_GET_ITEM(invoke, OP_INDEX));
        long long ret = ok ? PyLong_AsLongLong(PyTuple_GET_ITEM(completion, OP_INDEX)) : -1;
        if (PyErr_Occurred()) {
            PyErr_Clear();
            fallback = 1;
            break;
        }
        if (PyList_GET_SIZE(ops) == 0)
            base = call;
        call -= base;
        if (ok)
            ret -= base;
        if (call < 0 || call >= INT32_MAX - 1 || (ok && (ret < 0 || ret >= INT32_MAX - 1))) {
            fallback = 1; /* sparse or unordered positions: NativeSearch ranks them */
            break;
        }
        if (PyList_Append(ops, operation) < 0 || append_long(kinds, kind) < 0 || append_long(a1, x) < 0 ||
            append_long(a2, y) < 0 || append_long(calls, (long)call) < 0 || append_long(rets, (long)ret) < 0)
            goto done;
    }
    if (fallback) {
        /* forget the ids made here: the model's compile makes its own */
        for (Py_ssize_t k = PyList_GET_SIZE(states) - 1; k >= known; k--)
            if (PyDict_DelItem(sid_of, PyList_GET_ITEM(states, k)) < 0)
                goto done;
        if (PyList_SetSlice(states, known, PyList_GET_SIZE(states), NULL) < 0)
            goto done;
        Py_INCREF(Py_None);
        result = Py_None;
        goto done;
    }
    result = PyTuple_Pack(6, ops, kinds, a1, a2, calls, rets);
done:
    Py_DECREF(fast);
    Py_XDECREF(ops); Py_XDECREF(kinds); Py_XDECREF(a1); Py_XDECREF(a2); Py_XDECREF(calls); Py_XDECREF(rets);
    return result;
}

static PyMethodDef module_methods[] = {
    {"register_ops", register_ops, METH_VARARGS, "the register family's ops as the compiled search takes them"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef wgl_module = {
    PyModuleDef_HEAD_INIT, .m_name = "_wgl", .m_doc = "The compiled linearizability search.", .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__wgl(void) {
    if (PyType_Ready(&SearchType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&wgl_module);
    if (!m)
        return NULL;
    Py_INCREF(&SearchType);
    PyModule_AddObject(m, "Search", (PyObject *)&SearchType);
    PyModule_AddIntConstant(m, "CALLBACK", K_CALLBACK);
    PyModule_AddIntConstant(m, "READ", K_READ);
    PyModule_AddIntConstant(m, "WRITE", K_WRITE);
    PyModule_AddIntConstant(m, "CAS", K_CAS);
    PyModule_AddIntConstant(m, "ACQUIRE", K_ACQUIRE);
    PyModule_AddIntConstant(m, "RELEASE", K_RELEASE);
    PyModule_AddIntConstant(m, "APPEND", K_APPEND);
    PyModule_AddIntConstant(m, "RUNNING", RUNNING);
    PyModule_AddIntConstant(m, "VALID", VALID);
    PyModule_AddIntConstant(m, "INVALID", INVALID);
    PyModule_AddIntConstant(m, "MEMORY", MEMORY);
    PyModule_AddIntConstant(m, "CONFIGS", CONFIGS);
    PyModule_AddIntConstant(m, "SUBSUMPTION_WINDOW", SUBSUMPTION_WINDOW);
    return m;
}
