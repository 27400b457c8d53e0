/* The fused descent of smg._fast.radix: match, every tenant's match length, insert.
 * Included by radix_tree.h; see there for the model. */
#ifndef SMG_RADIX_WALK_H
#define SMG_RADIX_WALK_H

/* A node moved in memory (realloc): repoint its parent, children and LRU neighbours. */
static void rx_relocate(rx_tree *t, const rx_node *old, rx_node *n) {
    rx_node *p = n->parent;
    for (uint32_t i = 0; i < p->nkids; i++)
        if (p->kids[i] == old) p->kids[i] = n;
    for (uint32_t i = 0; i < n->nkids; i++) n->kids[i]->parent = n;
    for (uint32_t i = 0; i < n->nents; i++) {
        rx_entry *e = &n->ents[i];
        rx_tenant *T = &t->tenants[e->tenant];
        if (!e->listed) continue;
        if (e->older) rx_ent(e->older, e->tenant)->newer = n;
        else T->oldest = n;
        if (e->newer) rx_ent(e->newer, e->tenant)->older = n;
        else T->newest = n;
    }
}

/* Split c after its first m bytes (mu units). Returns the new upper node, which holds c's
 * tenants with their epochs (and c as their one child, so it is nobody's leaf); c keeps
 * the rest of the edge and its place in the leaf lists. */
static rx_node *rx_split(rx_tree *t, rx_node *c, uint32_t m, uint32_t mu) {
    rx_node *mid = rx_node_new(t, c->edge, m, mu);
    if (!mid) return NULL;
    /* allocate everything first: past this point nothing can fail */
    mid->kids = (rx_node **)rx_alloc(t, rx_kids_bytes(2));
    mid->ents = c->nents == 1 ? &mid->inl : (rx_entry *)rx_alloc(t, c->nents * sizeof(rx_entry));
    if (!mid->kids || !mid->ents) {
        rx_release(t, mid->kids, rx_kids_bytes(2));
        if (mid->ents != &mid->inl) rx_release(t, mid->ents, c->nents * sizeof(rx_entry));
        mid->kids = NULL;
        mid->ents = NULL;
        rx_node_free(t, mid);
        return NULL;
    }
    mid->kcap = 2;
    mid->ecap = mid->nents = c->nents;
    for (uint32_t i = 0; i < c->nents; i++) {
        mid->ents[i] = c->ents[i];
        mid->ents[i].tkids = 1;
        mid->ents[i].listed = 0;
        mid->ents[i].older = mid->ents[i].newer = NULL;
    }
    rx_node *p = c->parent;
    for (uint32_t i = 0; i < p->nkids; i++)
        if (p->kids[i] == c) p->kids[i] = mid;
    mid->parent = p;

    uint32_t rest = c->len - m;
    memmove(c->edge, c->edge + m, rest);
    c->len = rest;
    c->units -= mu;
    c->key = rx_key_at(t, c->edge, rest);
    c->parent = mid;
    t->stored -= m;
    rx_node *old = c;
    int inline_ents = c->ents == &c->inl;
    rx_node *moved = (rx_node *)rx_resize(t, c, rx_node_bytes(rest + m), rx_node_bytes(rest));
    if (moved) c = moved; /* a failed shrink keeps the larger block, still valid */
    if (inline_ents) c->ents = &c->inl;
    mid->kids[0] = c;
    rx_kid_keys(mid)[0] = c->key;
    mid->nkids = 1;
    if (c != old) rx_relocate(t, old, c);
    return mid;
}

/* Stamp n for tenant at this epoch, creating its entry if needed (n's parent then gains
 * a child holding the tenant, so it stops being one of its leaves). */
static rx_entry *rx_stamp(rx_tree *t, rx_node *n, uint32_t tenant, uint64_t epoch) {
    int64_t i = rx_find(n, tenant);
    rx_entry *e;
    if (i >= 0) {
        e = &n->ents[i];
        e->epoch = epoch;
        return e;
    }
    e = rx_ent_insert(t, n, (uint32_t)(-i - 1));
    if (!e) return NULL;
    memset(e, 0, sizeof(*e));
    e->tenant = tenant;
    e->epoch = epoch;
    t->tenants[tenant].size += n->units;
    if (n->parent != t->root) {
        rx_entry *pe = rx_ent(n->parent, tenant);
        if (pe->tkids++ == 0 && pe->listed) rx_lru_unlink(t, pe);
    }
    return e;
}

static int rx_reserve(rx_tree *t, uint32_t ntenants) {
    if (ntenants <= t->ntenants) return 0;
    if (ntenants > t->tcap) {
        uint32_t cap = t->tcap ? t->tcap : 8;
        while (cap < ntenants) cap *= 2;
        rx_tenant *a = (rx_tenant *)rx_resize(t, t->tenants, t->tcap * sizeof(rx_tenant),
                                              cap * sizeof(rx_tenant));
        if (!a) return RX_ENOMEM;
        t->tenants = a;
        t->tcap = cap;
    }
    memset(t->tenants + t->ntenants, 0, (ntenants - t->ntenants) * sizeof(rx_tenant));
    t->ntenants = ntenants;
    return 0;
}

static int64_t rx_most_recent(const rx_node *n) {
    int64_t best = -1;
    uint64_t when = 0;
    for (uint32_t i = 0; i < n->nents; i++)
        if (best < 0 || n->ents[i].epoch > when) {
            best = n->ents[i].tenant;
            when = n->ents[i].epoch;
        }
    return best;
}

/* One descent along key (n bytes, already cut to whole pages; key_units = its length in
 * units). flags: RX_LENS writes every tenant with a match (before any insert) to
 * out_ids/out_lens, using lens (indexed by tenant id) as scratch; cap is the size of all
 * three. RX_INSERT inserts the key for `tenant`. */
static int rx_walk(rx_tree *t, const uint8_t *key, size_t n, uint64_t key_units, int flags,
                   uint32_t tenant, uint32_t cap, uint32_t *lens, uint32_t *out_ids,
                   uint32_t *out_lens, rx_result *res) {
    rx_node *node = t->root, *deepest = NULL;
    size_t pos = 0;
    uint32_t done = 0;
    uint64_t epoch = 0;
    res->nout = 0;
    res->best = -1;
    if (flags & RX_INSERT) {
        if (rx_reserve(t, tenant + 1) < 0) return RX_ENOMEM;
        epoch = ++t->clock;
    }
    if ((flags & RX_LENS) && cap < t->ntenants) return RX_ESMALL;
    while (pos < n) {
        rx_node *c = rx_child(t, node, key + pos, n - pos);
        if (!c) break;
        size_t avail = n - pos, lim = c->len < avail ? c->len : avail;
        size_t m = rx_align(t, key + pos, rx_common(c->edge, key + pos, lim), lim);
        uint32_t mu = m == c->len ? c->units : rx_units(t, c->edge, m);
        if (flags & RX_LENS) {
            if (!deepest)
                for (uint32_t i = 0; i < c->nents; i++) out_ids[res->nout++] = c->ents[i].tenant;
            for (uint32_t i = 0; i < c->nents; i++) lens[c->ents[i].tenant] = done + mu;
        }
        deepest = c;
        done += mu;
        pos += m;
        if (m < c->len) {
            if (!(flags & RX_INSERT)) break;
            c = rx_split(t, c, (uint32_t)m, mu);
            if (!c) return RX_ENOMEM;
        }
        if ((flags & RX_INSERT) && !rx_stamp(t, c, tenant, epoch)) return RX_ENOMEM;
        node = c;
    }
    res->matched = done;
    if (deepest && !(flags & RX_INSERT)) res->best = rx_most_recent(deepest);
    if (flags & RX_LENS)
        for (uint32_t i = 0; i < res->nout; i++) out_lens[i] = lens[out_ids[i]];
    if (!(flags & RX_INSERT)) return 0;
    if (pos < n) {
        rx_node *leaf = rx_node_new(t, key + pos, (uint32_t)(n - pos), (uint32_t)(key_units - done));
        if (!leaf) return RX_ENOMEM;
        if (rx_kid_add(t, node, leaf) < 0) {
            rx_node_free(t, leaf);
            return RX_ENOMEM;
        }
        if (!rx_stamp(t, leaf, tenant, epoch)) return RX_ENOMEM;
        node = leaf;
    }
    if (node != t->root) { /* the final node: to the newest end if it is the tenant's leaf */
        rx_entry *e = rx_ent(node, tenant);
        if (e->tkids == 0) {
            if (e->listed) rx_lru_unlink(t, e);
            rx_lru_before(t, node, e, NULL);
        }
    }
    return 0;
}

#endif /* SMG_RADIX_WALK_H */
