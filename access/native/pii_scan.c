/* The raw-PII check's prefilter over a whole Arrow string vector (access/pii.py).
 *
 * Picks the values Python must look at closely; everything else is clean by construction.
 * One pass over the bytes, no allocation: a regular expression per value in DuckDB cost
 * more than writing the column, and the check reads back every masked column of a
 * delivery.
 *
 * SCAN_TEXT: a run of 11+ ASCII digits, a single space or hyphen allowed between two
 *            digits: exactly what pii.PREFILTER matches ([0-9](?:[ -]?[0-9]){10,}).
 * SCAN_TOKEN: anything but an empty value or exactly token_chars lowercase hex digits
 *            (a pseudonymised column must hold nothing else).
 */
#include <stdint.h>

enum { SCAN_TEXT = 1, SCAN_TOKEN = 2 };

static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static int has_digit_run(const uint8_t *s, const uint8_t *e) {
    int run = 0, separated = 0;
    for (; s < e; s++) {
        if (is_digit(*s)) {
            if (++run >= 11) return 1;
            separated = 0;
        } else if ((*s == ' ' || *s == '-') && run > 0 && !separated) {
            separated = 1; /* the run goes on only if a digit follows at once */
        } else {
            run = 0;
            separated = 0;
        }
    }
    return 0;
}

static int is_token(const uint8_t *s, const uint8_t *e, int token_chars) {
    unsigned bad = 0;
    if (s == e) return 1;
    if (e - s != token_chars) return 0;
    /* No early exit and no branch per character: random hex defeats branch prediction. */
    for (; s < e; s++) bad |= ((unsigned)(*s - '0') > 9u) & ((unsigned)(*s - 'a') > 5u);
    return !bad;
}

/* Writes the indexes of the candidate values to out_idx (room for n); returns how many. */
int64_t gs_pii_candidates(int mode, int64_t n, const int32_t *offsets, const uint8_t *data,
                          int token_chars, int32_t *out_idx) {
    int64_t found = 0;
    for (int64_t r = 0; r < n; r++) {
        const uint8_t *s = data + offsets[r], *e = data + offsets[r + 1];
        int flag = mode == SCAN_TOKEN ? !is_token(s, e, token_chars) : has_digit_run(s, e);
        if (flag) out_idx[found++] = (int32_t)r;
    }
    return found;
}
