/* A file delivery's COPY on a DuckDB connection of its own, with the pseudonym functions
 * registered through DuckDB's C API (access/native/__init__.py, ``copy``).
 *
 * Registered from Python, the HMAC is an Arrow UDF: DuckDB converts every vector to Arrow and
 * back and takes the GIL for each, which cost about as much as hashing. Registered through
 * the C API, DuckDB's worker threads call gs_hmac_vector directly on its own vectors.
 *
 * The C API is DuckDB's stable one (duckdb.h); its entry points are taken from the duckdb
 * Python module, which exports them, and handed over as a table of function pointers (no
 * headers needed, nothing linked). The declarations below follow duckdb.h. Without those
 * symbols the delivery uses the Arrow UDF on the Python connection instead.
 */
#define _DEFAULT_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t idx_t;
typedef void *handle_t; /* duckdb_database, _connection, _scalar_function, _logical_type... */
typedef struct {        /* duckdb_result */
    idx_t column_count, row_count, rows_changed;
    void *columns;
    char *error_message;
    void *internal_data;
} result_t;
typedef struct { /* duckdb_string_t */
    union {
        struct { uint32_t length; char prefix[4]; const char *ptr; } pointer;
        struct { uint32_t length; char inlined[12]; } inlined;
    } value;
} string_t;

enum { TYPE_VARCHAR = 17 };

/* The entry points used, in the order access.native passes them (API_FUNCTIONS). */
typedef struct {
    int (*open)(const char *, handle_t *);
    int (*connect)(handle_t, handle_t *);
    void (*disconnect)(handle_t *);
    void (*close)(handle_t *);
    int (*query)(handle_t, const char *, result_t *);
    void (*destroy_result)(result_t *);
    const char *(*result_error)(result_t *);
    int64_t (*value_int64)(result_t *, idx_t, idx_t);
    handle_t (*create_scalar_function)(void);
    void (*destroy_scalar_function)(handle_t *);
    void (*scalar_function_set_name)(handle_t, const char *);
    void (*scalar_function_add_parameter)(handle_t, handle_t);
    void (*scalar_function_set_return_type)(handle_t, handle_t);
    void (*scalar_function_set_extra_info)(handle_t, void *, void (*)(void *));
    void (*scalar_function_set_function)(handle_t, void (*)(handle_t, handle_t, handle_t));
    int (*register_scalar_function)(handle_t, handle_t);
    void *(*scalar_function_get_extra_info)(handle_t);
    handle_t (*create_logical_type)(int);
    void (*destroy_logical_type)(handle_t *);
    idx_t (*data_chunk_get_size)(handle_t);
    handle_t (*data_chunk_get_vector)(handle_t, idx_t);
    void *(*vector_get_data)(handle_t);
    uint64_t *(*vector_get_validity)(handle_t);
    void (*vector_ensure_validity_writable)(handle_t);
    void (*vector_assign_string_element_len)(handle_t, idx_t, const char *, idx_t);
    void (*scalar_function_set_error)(handle_t, const char *);
} api_t;

/* From hmac_sha256.c: n values given as Arrow-style offsets into data. */
int gs_hmac_sha256_hex(const uint8_t *key64, int64_t n, const int32_t *offsets,
                       const uint8_t *data, int mode, uint8_t *out, int32_t *out_offsets,
                       int out_chars);

typedef struct {
    uint8_t key64[64];
    int mode, chars;
} fn_info_t;

/* The same table for every call (the module's entry points do not move), kept for the
 * callbacks, which DuckDB calls without it. */
static const api_t *volatile g_api;

static void forget(void *p) {
    explicit_bzero(p, sizeof(fn_info_t));
    free(p);
}

static int is_valid(const uint64_t *validity, idx_t row) {
    return !validity || (validity[row / 64] >> (row % 64)) & 1;
}

/* One vector: the input strings are gathered into one buffer with Arrow-style offsets,
 * hashed by the same loop as the Arrow path, and written back as DuckDB strings. */
static void gs_hmac_vector(handle_t info, handle_t input, handle_t output) {
    const api_t *api = g_api;
    const fn_info_t *fi = api->scalar_function_get_extra_info(info);
    idx_t n = api->data_chunk_get_size(input), total = 0;
    handle_t in = api->data_chunk_get_vector(input, 0);
    const string_t *values = api->vector_get_data(in);
    const uint64_t *valid = api->vector_get_validity(in);
    for (idx_t r = 0; r < n; r++)
        if (is_valid(valid, r)) total += values[r].value.inlined.length;
    int32_t *offsets = malloc((n + 1) * sizeof *offsets);
    int32_t *out_offsets = malloc((n + 1) * sizeof *out_offsets);
    uint8_t *data = malloc(total + 1), *tokens = malloc(n * (idx_t)fi->chars + 1);
    if (!offsets || !out_offsets || !data || !tokens || total > INT32_MAX) {
        api->scalar_function_set_error(info, "gs_pseudonym: out of memory");
    } else {
        offsets[0] = 0;
        for (idx_t r = 0; r < n; r++) {
            uint32_t len = is_valid(valid, r) ? values[r].value.inlined.length : 0;
            const char *p = len <= 12 ? values[r].value.inlined.inlined
                                      : values[r].value.pointer.ptr;
            memcpy(data + offsets[r], p, len);
            offsets[r + 1] = offsets[r] + (int32_t)len;
        }
        gs_hmac_sha256_hex(fi->key64, (int64_t)n, offsets, data, fi->mode, tokens,
                           out_offsets, fi->chars);
        uint64_t *out_valid = NULL;
        if (valid) {
            api->vector_ensure_validity_writable(output);
            out_valid = api->vector_get_validity(output);
        }
        for (idx_t r = 0; r < n; r++) {
            if (!is_valid(valid, r)) {
                out_valid[r / 64] &= ~(1ULL << (r % 64));
                continue;
            }
            api->vector_assign_string_element_len(output, r, (const char *)tokens +
                                                  out_offsets[r],
                                                  (idx_t)(out_offsets[r + 1] - out_offsets[r]));
        }
    }
    if (data) explicit_bzero(data, total + 1); /* raw identifiers */
    free(offsets);
    free(out_offsets);
    free(data);
    free(tokens);
}

static void set_error(char *err, int errlen, const char *message) {
    if (errlen > 0) {
        strncpy(err, message ? message : "unknown error", (size_t)errlen - 1);
        err[errlen - 1] = 0;
    }
}

static int register_functions(const api_t *api, handle_t con, const uint8_t *key64,
                              const char *const *names, const int *modes, int n_fns,
                              int chars) {
    handle_t varchar = api->create_logical_type(TYPE_VARCHAR);
    int rc = 0;
    for (int i = 0; i < n_fns && rc == 0; i++) {
        fn_info_t *fi = calloc(1, sizeof *fi);
        if (!fi) { rc = -1; break; }
        memcpy(fi->key64, key64, 64);
        fi->mode = modes[i];
        fi->chars = chars;
        handle_t f = api->create_scalar_function();
        api->scalar_function_set_name(f, names[i]);
        api->scalar_function_add_parameter(f, varchar);
        api->scalar_function_set_return_type(f, varchar);
        api->scalar_function_set_extra_info(f, fi, forget); /* DuckDB owns fi from here */
        api->scalar_function_set_function(f, gs_hmac_vector);
        if (api->register_scalar_function(con, f) != 0) rc = -1;
        api->destroy_scalar_function(&f);
    }
    api->destroy_logical_type(&varchar);
    return rc;
}

/* Run stmts on a fresh in-memory database with the pseudonym functions names[i] (modes[i])
 * keyed with key64; *rows is the first value of the last statement's result (a COPY's row
 * count). Returns 0, or non-zero with the error in err. */
int gs_duckdb_copy(const api_t *api, const uint8_t *key64, const char *const *names,
                   const int *modes, int n_fns, int chars, const char *const *stmts,
                   int n_stmts, int64_t *rows, char *err, int errlen) {
    handle_t db = NULL, con = NULL;
    result_t res;
    int rc = 0;
    g_api = api;
    if (api->open(NULL, &db) != 0 || api->connect(db, &con) != 0) {
        set_error(err, errlen, "cannot open an in-memory DuckDB database");
        rc = 1;
    } else if (register_functions(api, con, key64, names, modes, n_fns, chars) != 0) {
        set_error(err, errlen, "cannot register the pseudonym functions");
        rc = 2;
    }
    for (int i = 0; rc == 0 && i < n_stmts; i++) {
        memset(&res, 0, sizeof res);
        if (api->query(con, stmts[i], &res) != 0) {
            set_error(err, errlen, api->result_error(&res));
            rc = 3;
        } else if (i == n_stmts - 1) {
            *rows = api->value_int64(&res, 0, 0);
        }
        api->destroy_result(&res);
    }
    if (con) api->disconnect(&con);
    if (db) api->close(&db);
    return rc;
}
