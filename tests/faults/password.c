/* The password line of the fault suite's single-prompt stack:
 *
 *   auth requisite pam_twofold.so single_prompt=ask
 *   auth requisite password.so                      (this module)
 *   auth required  pam_twofold.so single_prompt=verify
 *
 * It does what `pam_unix.so use_first_pass` does with the password the ask
 * line handed on, without an account database: PAM_AUTHTOK must be set (it
 * never asks) and equal TF_PASSWORD, else PAM_AUTH_ERR. In-process, unlike
 * pam_exec, so no fork runs under the shim's armed faults; its own libpam
 * calls are not pam_twofold.so's, so the shim never counts or fails them.
 * The password comes from the environment rather than the PAM line, which
 * libpam copies into blocks it frees at pam_end (the shim would report
 * them as freed secrets). It declares the two libpam functions it needs
 * itself, as host.c does, so building it needs no libpam0g-dev.
 */
#include <stdlib.h>
#include <string.h>

typedef struct pam_handle pam_handle_t;
int pam_get_item(const pam_handle_t *, int, const void **);

#define PAM_SUCCESS 0
#define PAM_AUTH_ERR 7
#define PAM_AUTHTOK 6

int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    (void)flags;
    (void)argc;
    (void)argv;
    const char *want = getenv("TF_PASSWORD");
    const void *authtok = NULL;
    if (!want || pam_get_item(pamh, PAM_AUTHTOK, &authtok) != PAM_SUCCESS || !authtok)
        return PAM_AUTH_ERR;
    return strcmp((const char *)authtok, want) == 0 ? PAM_SUCCESS : PAM_AUTH_ERR;
}

int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    (void)pamh;
    (void)flags;
    (void)argc;
    (void)argv;
    return PAM_SUCCESS;
}
