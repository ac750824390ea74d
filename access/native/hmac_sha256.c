/* HMAC-SHA256 pseudonym tokens for a whole Arrow string vector (access/native/__init__.py).
 *
 * DuckDB's sha256() is portable C (~0.3 us per 64-byte block) and SQL can only spell HMAC as
 * four blocks per value. Here the padded-key blocks are absorbed once per call, and each value
 * costs two more blocks, compressed by OpenSSL with the CPU's SHA extensions (~52 ns each).
 * Each value is normalised on the way into the hash (see NORM_*), which in SQL cost more per
 * value than the HMAC itself. The result is checked against Python's hmac
 * (access.pseudonym.pseudonym) for every normalisation when the library is loaded.
 *
 * No OpenSSL headers are needed: the few low-level SHA-256 entry points (deprecated in
 * OpenSSL 3, still exported) and the public SHA256_CTX layout are declared here, and the
 * library is linked against the libcrypto that Python's own hashlib already loaded.
 */
#define _DEFAULT_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* OpenSSL's public SHA256_CTX (openssl/sha.h, unchanged since 0.9.8): the chaining state
 * comes first, which the one-block fast path reads and SHA256_Transform advances. */
typedef struct {
    uint32_t h[8];
    uint32_t nl, nh;
    uint32_t data[16];
    unsigned int num, md_len;
    uint64_t spare[8]; /* slack, should a build add fields */
} ctx_t;
int SHA256_Init(void *c);
int SHA256_Update(void *c, const void *data, size_t len);
int SHA256_Final(unsigned char *md, void *c);
void SHA256_Transform(void *c, const unsigned char *block);

/* Normalisation flags, the same as access.native.TRIM, UPPER, LOWER and DIGITS. */
enum { NORM_TRIM = 1, NORM_UPPER = 2, NORM_LOWER = 4, NORM_DIGITS = 8 };

static const char HEX[] = "0123456789abcdef";

static int is_ascii_space(uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static int is_ideographic_space(const uint8_t *p) { /* U+3000, common in Chinese data entry */
    return p[0] == 0xE3 && p[1] == 0x80 && p[2] == 0x80;
}

/* Narrow [*s, *e) by ASCII whitespace and U+3000 at both ends. */
static void trim(const uint8_t **s, const uint8_t **e) {
    for (;;) {
        if (*s < *e && is_ascii_space(**s)) (*s)++;
        else if (*e - *s >= 3 && is_ideographic_space(*s)) *s += 3;
        else break;
    }
    for (;;) {
        if (*e > *s && is_ascii_space((*e)[-1])) (*e)--;
        else if (*e - *s >= 3 && is_ideographic_space(*e - 3)) *e -= 3;
        else break;
    }
}

/* Hash [s, e) into ctx, case-folded or reduced to digits as mode says; returns the
 * number of bytes hashed (0: the normalised value is empty). */
static size_t absorb(ctx_t *ctx, const uint8_t *s, const uint8_t *e, int mode) {
    uint8_t buf[256];
    size_t k = 0, total = 0;
    if (!(mode & (NORM_UPPER | NORM_LOWER | NORM_DIGITS))) {
        SHA256_Update(ctx, s, (size_t)(e - s));
        return (size_t)(e - s);
    }
    for (; s < e; s++) {
        uint8_t c = *s;
        if ((mode & NORM_DIGITS) && (c < '0' || c > '9')) continue;
        if ((mode & NORM_UPPER) && c >= 'a' && c <= 'z') c -= 'a' - 'A';
        if ((mode & NORM_LOWER) && c >= 'A' && c <= 'Z') c += 'a' - 'A';
        buf[k++] = c;
        if (k == sizeof buf) { SHA256_Update(ctx, buf, k); total += k; k = 0; }
    }
    if (k) SHA256_Update(ctx, buf, k);
    explicit_bzero(buf, sizeof buf);
    return total + k;
}

/* The normalised value into block[0..55] if it fits one block after the key block; its
 * length, or -1 when it is longer (the caller then streams it through absorb). */
static int normalise_short(const uint8_t *s, const uint8_t *e, int mode, uint8_t *block) {
    int k = 0;
    if (mode & NORM_DIGITS) {
        for (; s < e; s++) {
            if (*s < '0' || *s > '9') continue;
            if (k == 55) return -1;
            block[k++] = *s;
        }
        return k;
    }
    if (e - s > 55) return -1;
    k = (int)(e - s);
    memcpy(block, s, (size_t)k);
    if (mode & NORM_UPPER)  /* branch-free: (c - 'a') < 26 is 1 for a-z */
        for (int i = 0; i < k; i++) block[i] -= (uint8_t)(((unsigned)(block[i] - 'a') < 26u) << 5);
    if (mode & NORM_LOWER)
        for (int i = 0; i < k; i++) block[i] += (uint8_t)(((unsigned)(block[i] - 'A') < 26u) << 5);
    return k;
}

/* SHA-256 padding of a message whose first 64 bytes (the key block) were already hashed:
 * 0x80, zeros, then the bit length of key block + len bytes, big-endian. */
static void pad_block(uint8_t *block, int len) {
    uint64_t bits = (uint64_t)(64 + len) * 8;
    block[len] = 0x80;
    memset(block + len + 1, 0, 56 - (size_t)len - 1);
    for (int i = 0; i < 8; i++) block[63 - i] = (uint8_t)(bits >> (8 * i));
}

/* The chaining state as the digest's bytes (big-endian words). */
static void state_bytes(const ctx_t *ctx, uint8_t *md) {
    for (int i = 0; i < 8; i++) {
        uint32_t word = __builtin_bswap32(ctx->h[i]);
        memcpy(md + 4 * i, &word, 4);
    }
}

/* Lowercase hex of the digest's first chars / 2 bytes, read straight from the state words:
 * two characters per byte. */
static void hex_of(const ctx_t *ctx, uint8_t *out, int chars) {
    for (int i = 0; i < chars / 2; i++) {
        unsigned byte = (ctx->h[i / 4] >> (24 - 8 * (i % 4))) & 255u;
        out[2 * i] = (uint8_t)HEX[byte >> 4];
        out[2 * i + 1] = (uint8_t)HEX[byte & 15];
    }
}

/* Scratch space of one call, wiped once at its end (not per value: that cost more than
 * a SHA-256 block). */
typedef struct {
    ctx_t ctx;
    uint8_t block[64], inner_md[32];
} scratch_t;

/* HMAC of one value: inner0/outer0 have absorbed the padded key blocks. Returns the
 * normalised length (0: empty value); the MAC is then the state words of w->ctx. Values of
 * up to 55 normalised bytes, i.e. nearly all, cost exactly two compressions
 * (SHA256_Transform), with none of SHA256_Update/Final's buffering. */
static size_t mac_one(const ctx_t *inner0, const ctx_t *outer0, const uint8_t *s,
                      const uint8_t *e, int mode, scratch_t *w) {
    int len = normalise_short(s, e, mode, w->block);
    size_t total;
    if (len == 0) return 0;
    /* SHA256_Transform reads and advances only the state words h: copy just those. */
    memcpy(w->ctx.h, inner0->h, sizeof w->ctx.h);
    if (len > 0) {
        pad_block(w->block, len);
        SHA256_Transform(&w->ctx, w->block);
        state_bytes(&w->ctx, w->inner_md);
        total = (size_t)len;
    } else {
        w->ctx = *inner0;
        total = absorb(&w->ctx, s, e, mode);
        SHA256_Final(w->inner_md, &w->ctx);
    }
    memcpy(w->ctx.h, outer0->h, sizeof w->ctx.h);
    memcpy(w->block, w->inner_md, 32);
    pad_block(w->block, 32);
    SHA256_Transform(&w->ctx, w->block);  /* w->ctx.h is the MAC */
    return total;
}

/* key64: the key zero-padded to 64 bytes; offsets: n+1 Arrow int32 offsets into data;
 * out: room for n * out_chars bytes; out_offsets: n+1 int32 offsets written here. Each
 * value becomes the lowercase hex of the MAC's first out_chars / 2 bytes, or stays empty
 * when its normalised text is empty. */
int gs_hmac_sha256_hex(const uint8_t *key64, int64_t n, const int32_t *offsets,
                       const uint8_t *data, int mode, uint8_t *out, int32_t *out_offsets,
                       int out_chars) {
    uint8_t pad[64];
    ctx_t inner0, outer0;
    scratch_t work;
    int32_t pos = 0;
    if (out_chars <= 0 || out_chars > 64 || out_chars % 2) return -1;
    memset(&inner0, 0, sizeof inner0);
    memset(&outer0, 0, sizeof outer0);
    for (int i = 0; i < 64; i++) pad[i] = key64[i] ^ 0x36;
    if (!SHA256_Init(&inner0) || !SHA256_Update(&inner0, pad, 64)) return -2;
    for (int i = 0; i < 64; i++) pad[i] = key64[i] ^ 0x5c;
    if (!SHA256_Init(&outer0) || !SHA256_Update(&outer0, pad, 64)) return -2;
    /* The fast path relies on the key block having been compressed already. */
    if (inner0.num != 0 || outer0.num != 0) return -3;
    out_offsets[0] = 0;
    for (int64_t r = 0; r < n; r++) {
        const uint8_t *s = data + offsets[r], *e = data + offsets[r + 1];
        if (mode & NORM_TRIM) trim(&s, &e);
        if (mac_one(&inner0, &outer0, s, e, mode, &work) > 0) {
            hex_of(&work.ctx, out + pos, out_chars);
            pos += out_chars;
        }
        out_offsets[r + 1] = pos;
    }
    /* Key material must not outlive the call in stack memory (explicit_bzero is never
     * optimised away, unlike a final memset). */
    explicit_bzero(pad, sizeof pad);
    explicit_bzero(&inner0, sizeof inner0);
    explicit_bzero(&outer0, sizeof outer0);
    explicit_bzero(&work, sizeof work);
    return 0;
}
