/* HMAC-SHA256 pseudonym tokens for a whole Arrow string vector (access/native/__init__.py).
 *
 * DuckDB's sha256() is portable C (~0.3 us per 64-byte block) and SQL can only spell HMAC as
 * four blocks per value. Here the padded-key blocks are absorbed once per call and copied
 * per value (two blocks per value), and OpenSSL's SHA-256 uses the CPU's SHA extensions.
 * The result is checked against Python's hmac when the library is loaded.
 *
 * No OpenSSL headers are needed: the few low-level SHA-256 entry points (deprecated in
 * OpenSSL 3, still exported) are declared here, with a context buffer larger than
 * OpenSSL's 112-byte SHA256_CTX, and the library is linked against the libcrypto that
 * Python's own hashlib already loaded.
 */
#define _DEFAULT_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct { uint64_t opaque[32]; } ctx_t; /* >= sizeof(SHA256_CTX) */
int SHA256_Init(void *c);
int SHA256_Update(void *c, const void *data, size_t len);
int SHA256_Final(unsigned char *md, void *c);

static const char HEX[] = "0123456789abcdef";

/* key64: the key zero-padded to 64 bytes; offsets: n+1 Arrow int32 offsets into data;
 * out: n * out_chars bytes, the lowercase hex of the MAC's first out_chars / 2 bytes. */
int gs_hmac_sha256_hex(const uint8_t *key64, int64_t n, const int32_t *offsets,
                       const uint8_t *data, uint8_t *out, int out_chars) {
    uint8_t pad[64], inner_md[32], md[32];
    ctx_t inner0, outer0, ctx;
    if (out_chars <= 0 || out_chars > 64 || out_chars % 2) return -1;
    memset(&inner0, 0, sizeof inner0);
    memset(&outer0, 0, sizeof outer0);
    for (int i = 0; i < 64; i++) pad[i] = key64[i] ^ 0x36;
    if (!SHA256_Init(&inner0) || !SHA256_Update(&inner0, pad, 64)) return -2;
    for (int i = 0; i < 64; i++) pad[i] = key64[i] ^ 0x5c;
    if (!SHA256_Init(&outer0) || !SHA256_Update(&outer0, pad, 64)) return -2;
    for (int64_t r = 0; r < n; r++) {
        ctx = inner0;
        SHA256_Update(&ctx, data + offsets[r], (size_t)(offsets[r + 1] - offsets[r]));
        SHA256_Final(inner_md, &ctx);
        ctx = outer0;
        SHA256_Update(&ctx, inner_md, 32);
        SHA256_Final(md, &ctx);
        uint8_t *o = out + r * out_chars;
        for (int i = 0; i < out_chars / 2; i++) {
            o[2 * i] = (uint8_t)HEX[md[i] >> 4];
            o[2 * i + 1] = (uint8_t)HEX[md[i] & 15];
        }
    }
    /* Key material must not outlive the call in stack memory (explicit_bzero is never
     * optimised away, unlike a final memset). */
    explicit_bzero(pad, sizeof pad);
    explicit_bzero(&inner0, sizeof inner0);
    explicit_bzero(&outer0, sizeof outer0);
    explicit_bzero(&ctx, sizeof ctx);
    explicit_bzero(inner_md, sizeof inner_md);
    return 0;
}
