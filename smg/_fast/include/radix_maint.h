/* Eviction, tenant removal, clearing and the invariant check of smg._fast.radix. */
#ifndef SMG_RADIX_MAINT_H
#define SMG_RADIX_MAINT_H

#include "radix_tree.h"

static int rx_init(rx_tree *t, int kind, uint32_t page) {
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    t->page = page;
    t->root = (rx_node *)rx_alloc(t, rx_node_bytes(0));
    if (!t->root) return RX_ENOMEM;
    memset(t->root, 0, sizeof(rx_node));
    if (pthread_rwlock_init(&t->lock, NULL) != 0) {
        rx_release(t, t->root, rx_node_bytes(0));
        t->root = NULL;
        return RX_ENOMEM;
    }
    return 0;
}

/* Take the entry (index i) off n, which must be a leaf of its tenant; free n when no
 * tenant is left. A parent left with no child holding the tenant becomes its leaf: put
 * back in epoch order (sorted) or at the front. Returns units. */
static uint32_t rx_drop(rx_tree *t, rx_node *n, uint32_t i, int sorted) {
    rx_entry *e = &n->ents[i];
    uint32_t tenant = e->tenant, units = n->units;
    rx_node *p = n->parent;
    if (e->listed) rx_lru_unlink(t, e);
    t->tenants[tenant].size -= units;
    rx_ent_remove(n, i);
    if (p != t->root) {
        rx_entry *pe = rx_ent(p, tenant);
        if (--pe->tkids == 0) {
            if (sorted) rx_lru_sorted(t, p, pe);
            else rx_lru_before(t, p, pe, t->tenants[tenant].oldest);
        }
    }
    if (n->nents == 0 && n->nkids == 0) {
        rx_kid_del(p, n);
        rx_node_free(t, n);
    } else if (n->ecap >= 8 && n->nents <= n->ecap / 4) {
        rx_entry *e2 = (rx_entry *)rx_resize(t, n->ents, n->ecap * sizeof(rx_entry),
                                             (n->ecap / 2) * sizeof(rx_entry));
        if (e2) {
            n->ents = e2;
            n->ecap /= 2;
        }
    }
    return units;
}

/* Drop each tenant's oldest leaves while it holds more than budget units. */
static uint64_t rx_evict(rx_tree *t, uint64_t budget) {
    uint64_t evicted = 0;
    for (uint32_t id = 0; id < t->ntenants; id++) {
        rx_tenant *T = &t->tenants[id];
        while (T->size > budget && T->oldest) {
            rx_node *n = T->oldest;
            evicted += rx_drop(t, n, (uint32_t)rx_find(n, id), 1);
        }
    }
    return evicted;
}

/* Remove tenant from every node that holds it: O(those nodes). Returns units. */
static uint64_t rx_remove_tenant(rx_tree *t, uint32_t id) {
    uint64_t removed = 0;
    if (id >= t->ntenants) return 0;
    rx_tenant *T = &t->tenants[id];
    while (T->oldest) {
        rx_node *n = T->oldest;
        removed += rx_drop(t, n, (uint32_t)rx_find(n, id), 0);
    }
    return removed;
}

/* Free every node but the root; forget all tenants. No stack: children are popped. */
static void rx_clear(rx_tree *t) {
    rx_node *n = t->root;
    while (n) {
        if (n->nkids) {
            n = n->kids[--n->nkids];
            continue;
        }
        rx_node *p = n->parent;
        if (n != t->root) rx_node_free(t, n);
        else p = NULL;
        n = p;
    }
    rx_release(t, t->tenants, t->tcap * sizeof(rx_tenant));
    t->tenants = NULL;
    t->ntenants = t->tcap = 0;
}

static void rx_destroy(rx_tree *t) {
    if (!t->root) return;
    rx_clear(t);
    rx_release(t, t->root->kids, rx_kids_bytes(t->root->kcap));
    rx_release(t, t->root, rx_node_bytes(0));
    t->root = NULL;
    pthread_rwlock_destroy(&t->lock);
}

/* ---- invariant check (tests) -------------------------------------------------------- */

/* 0 when the tree is consistent, else a number naming the first broken rule. */
static int rx_check(rx_tree *t) {
    uint64_t cap = t->nodes + 1, top = 0, nodes = 0, stored = 0, nents = 0, nleaves = 0;
    rx_node **stack = (rx_node **)malloc(cap * sizeof(rx_node *));
    uint64_t *sizes = (uint64_t *)calloc(t->ntenants + 1, sizeof(uint64_t));
    int err = 0;
    if (!stack || !sizes) {
        free(stack);
        free(sizes);
        return RX_ENOMEM;
    }
    stack[top++] = t->root;
    while (top && !err) {
        rx_node *n = stack[--top];
        for (uint32_t i = 0; i < n->nkids && !err; i++) {
            rx_node *c = n->kids[i];
            if (c->parent != n) err = 1;
            else if (rx_kid_keys(n)[i] != c->key || c->len == 0) err = 2;
            else if (c->key != rx_key_at(t, c->edge, c->len)) err = 3;
            else if (top >= cap) err = 4; /* more nodes than counted */
            else stack[top++] = c;
        }
        if (n == t->root || err) continue;
        nodes++;
        stored += n->len;
        nents += n->nents;
        if (n->nents == 0) err = 5;
        else if (n->units != rx_units(t, n->edge, n->len)) err = 6;
        else if (t->kind == RX_TOKENS && n->len % t->page) err = 7;
        for (uint32_t i = 0; i < n->nents && !err; i++) {
            uint32_t id = n->ents[i].tenant;
            if (id >= t->ntenants || (i && n->ents[i - 1].tenant >= id)) err = 8;
            else if (n->parent != t->root && rx_find(n->parent, id) < 0) err = 9;
            else sizes[id] += n->units;
            if (err) break;
            uint32_t holding = 0;
            for (uint32_t k = 0; k < n->nkids; k++) holding += rx_find(n->kids[k], id) >= 0;
            if (holding != n->ents[i].tkids || n->ents[i].listed != (holding == 0)) err = 18;
            nleaves += holding == 0;
        }
    }
    if (!err && (nodes != t->nodes || stored != t->stored)) err = 10;
    /* leaf lists: exactly the listed entries, in strictly increasing epoch order */
    uint64_t listed = 0;
    for (uint32_t id = 0; id < t->ntenants && !err; id++) {
        rx_tenant *T = &t->tenants[id];
        if (T->size != sizes[id]) err = 11;
        rx_node *prev = NULL;
        for (rx_node *n = T->oldest; n && !err; n = rx_ent(n, id)->newer) {
            int64_t i = rx_find(n, id);
            if (i < 0) { err = 12; break; }
            rx_entry *e = &n->ents[i];
            if (e->older != prev || !e->listed || e->tkids) err = 13;
            else if (prev && rx_ent(prev, id)->epoch >= e->epoch) err = 14;
            prev = n;
            if (++listed > nents) err = 15;
        }
        if (!err && T->newest != prev) err = 16;
    }
    if (!err && listed != nleaves) err = 17;
    free(stack);
    free(sizes);
    return err;
}

#endif /* SMG_RADIX_MAINT_H */
