/* The application side of a login under fault injection: a minimal PAM
 * application (as sshd, su or a screen locker would be) that runs one
 * pam_authenticate and one pam_setcred with shim.c preloaded, arming the
 * shim's faults for exactly those two calls.
 *
 * Usage: host CONFDIR SERVICE USER TTY [RHOST], with TF_ANSWER the text
 * typed at every prompt; TTY becomes PAM_TTY, which tells the daemon's log
 * lines of one run from another's, and RHOST PAM_RHOST, as sshd sets it. Written in C so that a failed allocation in the application is
 * handled (PAM_BUF_ERR), as C applications do; only the module's own
 * handling is under test. It declares the few libpam functions it calls
 * itself (the ABI is stable), so building it needs no libpam0g-dev.
 *
 * With TF_FAULT=conv:VARIANT the shim counts the conversation's calls and
 * this program fails the TF_FAULT_AT-th one as VARIANT says:
 *   err             returns PAM_CONV_ERR (the person pressed Ctrl-D)
 *   buf_err         returns PAM_BUF_ERR (the application ran out of memory)
 *   no_reply        returns PAM_SUCCESS without a reply array
 *   null_answer     returns PAM_SUCCESS, a reply array, a NULL answer
 *   err_with_reply  returns PAM_CONV_ERR but hands over a reply array with
 *                   the answer in it anyway (the module must free it unused)
 *
 * It prints key=value lines: authenticate=, setcred=, prompts=, notices=,
 * the shim's report, and `survived` once pam_end has returned.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

struct pam_message { int msg_style; const char *msg; };
struct pam_response { char *resp; int resp_retcode; };
struct pam_conv {
    int (*conv)(int, const struct pam_message **, struct pam_response **, void *);
    void *appdata_ptr;
};
typedef struct pam_handle pam_handle_t;
int pam_start_confdir(const char *, const char *, const struct pam_conv *,
                      const char *, pam_handle_t **);
int pam_set_item(pam_handle_t *, int, const void *);
int pam_authenticate(pam_handle_t *, int);
int pam_setcred(pam_handle_t *, int);
int pam_end(pam_handle_t *, int);

#define PAM_SUCCESS 0
#define PAM_BUF_ERR 5
#define PAM_CONV_ERR 19
#define PAM_TTY 3
#define PAM_RHOST 4
#define PAM_PROMPT_ECHO_OFF 1
#define PAM_PROMPT_ECHO_ON 2
#define PAM_ESTABLISH_CRED 0x2

static void (*arm)(int);
static int (*fault_hit)(void);
static const char *(*fault_variant)(void);
static void (*report)(void);

static const char *answer;
static int prompts, notices;

static int is_prompt(int style) {
    return style == PAM_PROMPT_ECHO_OFF || style == PAM_PROMPT_ECHO_ON;
}

/* A reply array for `n` messages: the answer for prompts, NULL otherwise
 * (or NULL everywhere with `null_answers`). NULL when memory ran out. */
static struct pam_response *replies(int n, const struct pam_message **msg, int null_answers) {
    struct pam_response *r = calloc((size_t)n, sizeof *r);
    if (!r)
        return NULL;
    for (int i = 0; i < n; i++) {
        if (null_answers || !is_prompt(msg[i]->msg_style))
            continue;
        r[i].resp = strdup(answer);
        if (!r[i].resp) {
            for (int j = 0; j < i; j++)
                free(r[j].resp);
            free(r);
            return NULL;
        }
    }
    return r;
}

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data) {
    (void)data;
    if (n <= 0 || !msg || !resp)
        return PAM_CONV_ERR;
    for (int i = 0; i < n; i++) {
        if (is_prompt(msg[i]->msg_style))
            prompts++;
        else
            notices++;
    }
    if (fault_hit()) {
        const char *v = fault_variant();
        if (strcmp(v, "buf_err") == 0)
            return PAM_BUF_ERR;
        if (strcmp(v, "no_reply") == 0) {
            *resp = NULL;
            return PAM_SUCCESS;
        }
        if (strcmp(v, "null_answer") == 0) {
            struct pam_response *r = replies(n, msg, 1);
            if (!r)
                return PAM_BUF_ERR;
            *resp = r;
            return PAM_SUCCESS;
        }
        if (strcmp(v, "err_with_reply") == 0)
            *resp = replies(n, msg, 0);
        return PAM_CONV_ERR;
    }
    struct pam_response *r = replies(n, msg, 0);
    if (!r)
        return PAM_BUF_ERR;
    *resp = r;
    return PAM_SUCCESS;
}

#define FIND(var, name)                                        \
    do {                                                       \
        *(void **)&var = dlsym(RTLD_DEFAULT, name);            \
        if (!var) {                                            \
            fprintf(stderr, "host: %s not found: is shim.so preloaded?\n", name); \
            return 71;                                         \
        }                                                      \
    } while (0)

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6)
        return 64;
    /* An abort is an outcome to report, not a core file to write. */
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    FIND(arm, "tf_faults_arm");
    FIND(fault_hit, "tf_fault_hit");
    FIND(fault_variant, "tf_fault_variant");
    FIND(report, "tf_faults_report");
    answer = getenv("TF_ANSWER");
    if (!answer)
        answer = "";

    struct pam_conv c = {conv, NULL};
    pam_handle_t *pamh = NULL;
    int r = pam_start_confdir(argv[2], argv[3], &c, argv[1], &pamh);
    if (r != PAM_SUCCESS) {
        printf("pam_start=%d\n", r);
        return 2;
    }
    r = pam_set_item(pamh, PAM_TTY, argv[4]);
    if (r == PAM_SUCCESS && argc == 6)
        r = pam_set_item(pamh, PAM_RHOST, argv[5]);
    if (r != PAM_SUCCESS) {
        printf("pam_set_item=%d\n", r);
        return 2;
    }
    arm(1);
    int auth = pam_authenticate(pamh, 0);
    int cred = pam_setcred(pamh, PAM_ESTABLISH_CRED);
    arm(0);
    printf("authenticate=%d\nsetcred=%d\nprompts=%d\nnotices=%d\n", auth, cred, prompts, notices);
    pam_end(pamh, auth);
    report();
    printf("survived\n");
    return 0;
}
