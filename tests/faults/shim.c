/* Fault injection for pam_twofold.so, loaded with LD_PRELOAD into the host
 * program (host.c) that drives it through the real libpam.
 *
 * It stands in for libpam's item and data functions, for the allocator, and
 * for syslog, and makes ONE call fail: the N-th call at one site, counted
 * from the moment the host arms it (right before pam_authenticate, so
 * libpam's own setup is never hit). Configured by environment variables:
 *
 *   TF_FAULT     SITE or SITE:VARIANT, e.g. get_item:null, malloc_module;
 *                unset or "none" injects nothing (the calls are still counted)
 *   TF_FAULT_AT  N, the call to fail (1 = the first)
 *   TF_ITEM      with get_item and set_item: count only calls for this item
 *                type (e.g. 4, PAM_RHOST)
 *   TF_LOG       file that receives every syslog line, one a line, instead
 *                of /dev/log
 *   TF_SECRETS   comma-separated texts (the code typed, a password) that no
 *                block freed during the login may still hold
 *
 * Sites (the pam_* ones count only calls made from pam_twofold.so itself):
 *   get_user      pam_get_user: err = PAM_SYSTEM_ERR, null = success, no user
 *   get_item      pam_get_item: err = PAM_BAD_ITEM, null = success, NULL item
 *   set_item      pam_set_item: err = PAM_SYSTEM_ERR, nothing set
 *   get_data      pam_get_data: err = PAM_NO_MODULE_DATA, null = success, NULL
 *   set_data      pam_set_data: err = PAM_SYSTEM_ERR, nothing kept
 *   malloc_module malloc, calloc, realloc, posix_memalign, aligned_alloc and
 *                 memalign called from pam_twofold.so: NULL, ENOMEM; with
 *                 variant `from`, the N-th and every later one fails too
 *                 (memory that stays short)
 *   malloc_other  the same functions called from anywhere else (libpam, libc,
 *                 the host's conversation)
 *   conv          the host's conversation function (host.c asks tf_fault_hit)
 *   syslog        pam_syslog called from pam_twofold.so: counted, never failed
 *
 * The host calls tf_faults_arm(1) before pam_authenticate and
 * tf_faults_arm(0) after pam_setcred (freed blocks stay watched through
 * pam_end), and tf_faults_report() to print `key=value` lines: calls.SITE=K
 * for every site, bytes.malloc_module=K (the bytes the module's allocations
 * asked for, a realloc counting its new size: what its allocator's reserve
 * would have to hand out if every one of them failed), failed_bytes=K (the
 * bytes of the module's allocations that were failed: what its reserve did
 * hand out), largest.malloc_module=K (its largest single request),
 * injected=0|1,
 * freed_secrets=K, and for the first few
 * freed_secret_at= which secret (1 = the first of TF_SECRETS), the block's
 * size, and the call stack that freed it as object+offset
 * (twofold_tests::faults::symbolize names the module's functions).
 * An injected fault is also said on stderr at once ("tf-shim: injected"),
 * since the run may not live to report it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct pam_handle pam_handle_t;

#define PAM_SUCCESS 0
#define PAM_SYSTEM_ERR 4
#define PAM_NO_MODULE_DATA 18
#define PAM_BAD_ITEM 29

/* glibc's allocator under its own names: no dlsym needed from malloc. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

enum site {
    S_GET_USER, S_GET_ITEM, S_SET_ITEM, S_GET_DATA, S_SET_DATA,
    S_MALLOC_MODULE, S_MALLOC_OTHER, S_CONV, S_SYSLOG, S_COUNT
};
static const char *const site_names[S_COUNT] = {
    "get_user", "get_item", "set_item", "get_data", "set_data",
    "malloc_module", "malloc_other", "conv", "syslog",
};

static int armed, watching, injected, sticky;
static int fault_site = -1;
static char fault_variant[32];
static long fault_at;
static long counts[S_COUNT];
static size_t module_bytes, module_largest, failed_bytes;
static int log_fd = -1;
static int item_filter = -1;

#define MAX_SECRETS 4
static char secret_buf[256];
static const char *secrets[MAX_SECRETS];
static size_t secret_lens[MAX_SECRETS];
static int n_secrets;
static long freed_secrets;
#define MAX_WHERE 4
static char freed_where[MAX_WHERE][1024];

/* Set while the shim itself works, so its own calls are neither counted
 * nor failed nor scanned. */
static __thread int busy __attribute__((tls_model("initial-exec")));

typedef int (*get_user_fn)(pam_handle_t *, const char **, const char *);
typedef int (*get_item_fn)(const pam_handle_t *, int, const void **);
typedef int (*set_item_fn)(pam_handle_t *, int, const void *);
typedef int (*get_data_fn)(const pam_handle_t *, const char *, const void **);
typedef void (*cleanup_fn)(pam_handle_t *, void *, int);
typedef int (*set_data_fn)(pam_handle_t *, const char *, void *, cleanup_fn);
typedef void (*vsyslog_fn)(const pam_handle_t *, int, const char *, va_list);

static get_user_fn real_get_user;
static get_item_fn real_get_item;
static set_item_fn real_set_item;
static get_data_fn real_get_data;
static set_data_fn real_set_data;
static vsyslog_fn real_pam_vsyslog;

__attribute__((constructor)) static void tf_init(void) {
    busy = 1;
    real_get_user = (get_user_fn)dlsym(RTLD_NEXT, "pam_get_user");
    real_get_item = (get_item_fn)dlsym(RTLD_NEXT, "pam_get_item");
    real_set_item = (set_item_fn)dlsym(RTLD_NEXT, "pam_set_item");
    real_get_data = (get_data_fn)dlsym(RTLD_NEXT, "pam_get_data");
    real_set_data = (set_data_fn)dlsym(RTLD_NEXT, "pam_set_data");
    real_pam_vsyslog = (vsyslog_fn)dlsym(RTLD_NEXT, "pam_vsyslog");
    /* backtrace() loads libgcc_s the first time; not from inside free(). */
    void *frame[1];
    backtrace(frame, 1);

    const char *f = getenv("TF_FAULT");
    if (f && strcmp(f, "none") != 0) {
        const char *colon = strchr(f, ':');
        size_t len = colon ? (size_t)(colon - f) : strlen(f);
        for (int i = 0; i < S_COUNT; i++)
            if (strlen(site_names[i]) == len && strncmp(site_names[i], f, len) == 0)
                fault_site = i;
        if (fault_site < 0) {
            fprintf(stderr, "shim: unknown TF_FAULT %s\n", f);
            _exit(70);
        }
        snprintf(fault_variant, sizeof fault_variant, "%s", colon ? colon + 1 : "err");
        sticky = strcmp(fault_variant, "from") == 0;
    }
    const char *at = getenv("TF_FAULT_AT");
    fault_at = at ? strtol(at, NULL, 10) : 0;
    const char *item = getenv("TF_ITEM");
    if (item)
        item_filter = (int)strtol(item, NULL, 10);
    const char *log = getenv("TF_LOG");
    if (log)
        log_fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    const char *s = getenv("TF_SECRETS");
    if (s) {
        snprintf(secret_buf, sizeof secret_buf, "%s", s);
        for (char *tok = strtok(secret_buf, ","); tok && n_secrets < MAX_SECRETS;
             tok = strtok(NULL, ",")) {
            secrets[n_secrets] = tok;
            secret_lens[n_secrets++] = strlen(tok);
        }
    }
    busy = 0;
}

/* Whether `addr` (a return address) lies in pam_twofold.so. */
static int in_module(const void *addr) {
    Dl_info info;
    if (!dladdr(addr, &info) || !info.dli_fname)
        return 0;
    return strstr(info.dli_fname, "pam_twofold") != NULL;
}

/* Counts one call at `site`; true when it is to fail. */
static int hit(int site) {
    long n = ++counts[site];
    if (site == fault_site && sticky && fault_at > 0 && n > fault_at)
        return 1;
    if (site == fault_site && n == fault_at) {
        injected = 1;
        /* Said at once: the run may not live to report it. */
        char msg[96];
        int len = snprintf(msg, sizeof msg, "tf-shim: injected %s:%s at call %ld\n",
                           site_names[site], fault_variant, n);
        if (len > 0) {
            ssize_t w = write(2, msg, (size_t)len);
            (void)w;
        }
        return 1;
    }
    return 0;
}

/* Counts a call to a pam_* function made by the module; true to fail it. */
static int pam_call_fails(int site, const void *caller) {
    if (!armed || busy)
        return 0;
    busy = 1;
    int fail = in_module(caller) && hit(site);
    busy = 0;
    return fail;
}

static int variant_is(const char *v) { return strcmp(fault_variant, v) == 0; }

/* Counts one allocation of `size` bytes; true to fail it. */
static int alloc_fails(const void *caller, size_t size) {
    if (!armed || busy)
        return 0;
    busy = 1;
    int module = in_module(caller);
    if (module) {
        module_bytes += size;
        if (size > module_largest)
            module_largest = size;
    }
    int fail = hit(module ? S_MALLOC_MODULE : S_MALLOC_OTHER);
    if (fail && module)
        failed_bytes += size;
    busy = 0;
    return fail;
}

/* Which secret (1, 2, …) the live block `p` holds; 0 for none or when not
 * watching. */
static int holds_secret(void *p) {
    if (!watching || busy || n_secrets == 0)
        return 0;
    busy = 1;
    size_t size = malloc_usable_size(p);
    int found = 0;
    for (int i = 0; i < n_secrets && !found; i++)
        if (secret_lens[i] && memmem(p, size, secrets[i], secret_lens[i]))
            found = i + 1;
    busy = 0;
    return found;
}

/* "object+0xoffset" for a code address. */
static int where(char *out, size_t size, const void *addr) {
    Dl_info info;
    if (!dladdr(addr, &info) || !info.dli_fname)
        return snprintf(out, size, "%p", addr);
    const char *slash = strrchr(info.dli_fname, '/');
    return snprintf(out, size, "%s+0x%lx", slash ? slash + 1 : info.dli_fname,
                    (unsigned long)((uintptr_t)addr - (uintptr_t)info.dli_fbase));
}

/* Records that a block of `size` bytes holding a secret was freed, with the
 * call stack that freed it (innermost first). */
static void note_freed_secret(int secret, size_t size) {
    busy = 1;
    if (freed_secrets < MAX_WHERE) {
        /* The wrapper and the allocator's own frames, then the code. */
        void *frames[12];
        int n = backtrace(frames, 12);
        char *out = freed_where[freed_secrets];
        size_t left = sizeof freed_where[0];
        int w = snprintf(out, left, "secret %d in a %zu-byte block:", secret, size);
        Dl_info self;
        const void *shim_base = dladdr((void *)tf_init, &self) ? self.dli_fbase : NULL;
        for (int i = 0; i < n && w > 0 && (size_t)w < left; i++) {
            Dl_info info;
            /* The shim's own frames (this function, free, realloc) say nothing. */
            if (dladdr(frames[i], &info) && info.dli_fbase == shim_base)
                continue;
            out += w;
            left -= (size_t)w;
            w = snprintf(out, left, " ");
            if (w > 0 && (size_t)w < left) {
                out += w;
                left -= (size_t)w;
                /* A return address: the call is the instruction before. */
                w = where(out, left, (const char *)frames[i] - 1);
            }
        }
    }
    freed_secrets++;
    busy = 0;
}

/* Notes a block about to be freed that still holds a secret. */
static void scan_freed(void *p) {
    int secret = p ? holds_secret(p) : 0;
    if (secret)
        note_freed_secret(secret, malloc_usable_size(p));
}

void tf_faults_arm(int on) { armed = on; if (on) watching = 1; }
int tf_fault_hit(void) { return armed && hit(S_CONV); }
const char *tf_fault_variant(void) { return fault_variant; }

void tf_faults_report(void) {
    busy = 1;
    for (int i = 0; i < S_COUNT; i++)
        printf("calls.%s=%ld\n", site_names[i], counts[i]);
    printf("bytes.malloc_module=%zu\nfailed_bytes=%zu\nlargest.malloc_module=%zu\n",
           module_bytes, failed_bytes, module_largest);
    printf("injected=%d\n", injected);
    printf("freed_secrets=%ld\n", freed_secrets);
    for (long i = 0; i < freed_secrets && i < MAX_WHERE; i++)
        printf("freed_secret_at=%s\n", freed_where[i]);
    busy = 0;
}

/* ---- libpam ---- */

int pam_get_user(pam_handle_t *pamh, const char **user, const char *prompt) {
    if (pam_call_fails(S_GET_USER, __builtin_return_address(0))) {
        if (variant_is("null")) {
            if (user) *user = NULL;
            return PAM_SUCCESS;
        }
        return PAM_SYSTEM_ERR;
    }
    return real_get_user(pamh, user, prompt);
}

int pam_get_item(const pam_handle_t *pamh, int type, const void **item) {
    if ((item_filter < 0 || type == item_filter) &&
        pam_call_fails(S_GET_ITEM, __builtin_return_address(0))) {
        if (variant_is("null")) {
            if (item) *item = NULL;
            return PAM_SUCCESS;
        }
        return PAM_BAD_ITEM;
    }
    return real_get_item(pamh, type, item);
}

int pam_set_item(pam_handle_t *pamh, int type, const void *item) {
    if ((item_filter < 0 || type == item_filter) &&
        pam_call_fails(S_SET_ITEM, __builtin_return_address(0)))
        return PAM_SYSTEM_ERR;
    return real_set_item(pamh, type, item);
}

int pam_get_data(const pam_handle_t *pamh, const char *name, const void **data) {
    if (pam_call_fails(S_GET_DATA, __builtin_return_address(0))) {
        if (variant_is("null")) {
            if (data) *data = NULL;
            return PAM_SUCCESS;
        }
        return PAM_NO_MODULE_DATA;
    }
    return real_get_data(pamh, name, data);
}

int pam_set_data(pam_handle_t *pamh, const char *name, void *data, cleanup_fn cleanup) {
    if (pam_call_fails(S_SET_DATA, __builtin_return_address(0)))
        return PAM_SYSTEM_ERR;
    return real_set_data(pamh, name, data, cleanup);
}

void pam_syslog(const pam_handle_t *pamh, int priority, const char *fmt, ...) {
    pam_call_fails(S_SYSLOG, __builtin_return_address(0));
    va_list ap;
    va_start(ap, fmt);
    real_pam_vsyslog(pamh, priority, fmt, ap);
    va_end(ap);
}

/* ---- syslog: captured to TF_LOG, never sent to /dev/log ---- */

static void capture(int pri, const char *fmt, va_list ap) {
    int was_busy = busy;
    busy = 1;
    char line[4096];
    int n = snprintf(line, sizeof line, "%d\t", pri);
    if (n > 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    size_t len = strlen(line);
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\n') line[i] = ' ';
    if (log_fd >= 0 && len + 1 < sizeof line) {
        line[len++] = '\n';
        ssize_t w = write(log_fd, line, len);
        (void)w;
    }
    busy = was_busy;
}

void vsyslog(int pri, const char *fmt, va_list ap) { capture(pri, fmt, ap); }
void __vsyslog_chk(int pri, int flag, const char *fmt, va_list ap) {
    (void)flag;
    capture(pri, fmt, ap);
}
void syslog(int pri, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    capture(pri, fmt, ap);
    va_end(ap);
}
void __syslog_chk(int pri, int flag, const char *fmt, ...) {
    (void)flag;
    va_list ap;
    va_start(ap, fmt);
    capture(pri, fmt, ap);
    va_end(ap);
}

/* ---- the allocator ---- */

void *malloc(size_t n) {
    if (alloc_fails(__builtin_return_address(0), n)) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size) {
    if (alloc_fails(__builtin_return_address(0), n * size)) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n) {
    const void *caller = __builtin_return_address(0);
    if (p && n == 0) {
        scan_freed(p);
        __libc_free(p);
        return NULL;
    }
    if (alloc_fails(caller, n)) {
        errno = ENOMEM;
        return NULL;
    }
    /* A block that realloc moves is freed with its old bytes still in it.
     * glibc moves a growing block only when its neighbour is taken, so a
     * block holding a secret is always moved here, as any realloc may do:
     * whether a copy is left behind must not depend on the heap's layout. */
    int held = p ? holds_secret(p) : 0;
    size_t old = p ? malloc_usable_size(p) : 0;
    if (!held || n <= old)
        return __libc_realloc(p, n);
    void *q = __libc_malloc(n);
    if (!q)
        return NULL;
    memcpy(q, p, old);
    note_freed_secret(held, old);
    __libc_free(p);
    return q;
}

int posix_memalign(void **out, size_t align, size_t n) {
    if (alloc_fails(__builtin_return_address(0), n))
        return ENOMEM;
    if (align < sizeof(void *) || (align & (align - 1)) != 0)
        return EINVAL;
    void *p = __libc_memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

void *aligned_alloc(size_t align, size_t n) {
    if (alloc_fails(__builtin_return_address(0), n)) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_memalign(align, n);
}

void *memalign(size_t align, size_t n) {
    if (alloc_fails(__builtin_return_address(0), n)) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_memalign(align, n);
}

void free(void *p) {
    scan_freed(p);
    __libc_free(p);
}
