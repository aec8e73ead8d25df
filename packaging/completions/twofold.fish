# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_twofold_global_optspecs
    string join \n socket= config= timeout= h/help V/version
end

function __fish_twofold_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_twofold_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_twofold_using_subcommand
    set -l cmd (__fish_twofold_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c twofold -n "__fish_twofold_needs_command" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_needs_command" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_needs_command" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c twofold -n "__fish_twofold_needs_command" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_needs_command" -f -a "enroll" -d 'Enroll a second factor'
complete -c twofold -n "__fish_twofold_needs_command" -f -a "doctor" -d 'Check this host\'s sshd, PAM stacks, twofoldd, its files and the clock; each finding says what, why and the fix. Changes nothing. Exit 0 when clean, 9 with warnings, 10 with errors'
complete -c twofold -n "__fish_twofold_needs_command" -f -a "status" -d 'Show what is enrolled for an account'
complete -c twofold -n "__fish_twofold_needs_command" -f -a "backup-codes" -d 'Manage backup codes'
complete -c twofold -n "__fish_twofold_needs_command" -f -a "remove" -d 'Remove a second factor'
complete -c twofold -n "__fish_twofold_needs_command" -f -a "admin" -d 'Administer accounts (root or the admin group only)'
complete -c twofold -n "__fish_twofold_needs_command" -f -a "config" -d 'Work with the configuration file'
complete -c twofold -n "__fish_twofold_needs_command" -f -a "audit" -d 'Read the audit trail (admins: every account; others: their own), or verify it'
complete -c twofold -n "__fish_twofold_needs_command" -f -a "stats" -d 'Enrollment, policy and login figures (admins only)'
complete -c twofold -n "__fish_twofold_needs_command" -f -a "devices" -d 'List the remembered devices (SSH keys, login sessions) that log in without a second factor until they expire, or forget them'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and not __fish_seen_subcommand_from totp fido2 confirm email sms" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and not __fish_seen_subcommand_from totp fido2 confirm email sms" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and not __fish_seen_subcommand_from totp fido2 confirm email sms" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and not __fish_seen_subcommand_from totp fido2 confirm email sms" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and not __fish_seen_subcommand_from totp fido2 confirm email sms" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and not __fish_seen_subcommand_from totp fido2 confirm email sms" -f -a "totp" -d 'Enroll an authenticator app (TOTP): shows a QR code, then asks for a code to confirm'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and not __fish_seen_subcommand_from totp fido2 confirm email sms" -f -a "fido2" -d 'Enroll a FIDO2 security key plugged into this machine: touch it twice (register, confirm). For console, sudo, desktop and screen locker logins on this machine; never offered over SSH'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and not __fish_seen_subcommand_from totp fido2 confirm email sms" -f -a "confirm" -d 'Confirm a pending TOTP enrollment with a code from the app'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and not __fish_seen_subcommand_from totp fido2 confirm email sms" -f -a "email" -d 'Enroll an email address: the daemon mails a code to it, and the address counts once that code is typed back'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and not __fish_seen_subcommand_from totp fido2 confirm email sms" -f -a "sms" -d 'Enroll a phone number for SMS codes: the daemon texts a code to it, and the number counts once that code is typed back. SMS is the weakest factor (SIM swap): prefer TOTP where it matters'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from totp" -l user -d 'Act on this account instead of your own (admins only)' -r
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from totp" -l algorithm -d 'HMAC algorithm: SHA1 (works with every app), SHA256 or SHA512 [default: as configured, normally SHA1]' -r
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from totp" -l digits -d 'Code length, 6 to 8 digits [default: as configured, normally 6]' -r
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from totp" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from totp" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from totp" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from totp" -l no-qr -d 'Do not draw the QR code (print only the URI and the secret)'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from totp" -l qr-invert -d 'Draw the QR code for a terminal with a light background (dark text on white); chosen by itself when COLORFGBG says so'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from totp" -l no-confirm -d 'Only start the enrollment and print it; confirm later with `twofold enroll confirm`'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from totp" -l json -d 'Print JSON for scripts (times as Unix seconds)'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from totp" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from totp" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from fido2" -l user -d 'Act on this account instead of your own (admins only)' -r
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from fido2" -l name -d 'A name for the key, e.g. "YubiKey 5" [default: key-N]' -r
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from fido2" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from fido2" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from fido2" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from fido2" -l pin -d 'The key has a PIN: ask it (hidden, or a line of stdin) and pass it to the key for the registration'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from fido2" -l json -d 'Print JSON for scripts (times as Unix seconds)'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from fido2" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from fido2" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from confirm" -l user -d 'Act on this account instead of your own (admins only)' -r
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from confirm" -l code -d 'The code; without it, it is read from the terminal with echo off, or as one line from stdin when stdin is not a terminal. A code on the command line is visible to other users in the process list: prefer stdin' -r
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from confirm" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from confirm" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from confirm" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from confirm" -l json -d 'Print JSON for scripts (times as Unix seconds)'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from confirm" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from confirm" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from email" -l user -d 'Act on this account instead of your own (admins only)' -r
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from email" -l address -d 'The address codes are sent to (a code is mailed to it now)' -r
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from email" -l code -d 'The code; without it, it is read from the terminal with echo off, or as one line from stdin when stdin is not a terminal. A code on the command line is visible to other users in the process list: prefer stdin' -r
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from email" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from email" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from email" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from email" -l no-confirm -d 'Only send the code; confirm later with `twofold enroll email`'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from email" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from email" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from sms" -l user -d 'Act on this account instead of your own (admins only)' -r
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from sms" -l phone -d 'The number codes are sent to, in E.164 form (+14155550100)' -r
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from sms" -l code -d 'The code; without it, it is read from the terminal with echo off, or as one line from stdin when stdin is not a terminal. A code on the command line is visible to other users in the process list: prefer stdin' -r
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from sms" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from sms" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from sms" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from sms" -l no-confirm -d 'Only send the code; confirm later with `twofold enroll sms`'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from sms" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand enroll; and __fish_seen_subcommand_from sms" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand doctor" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand doctor" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand doctor" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand doctor" -l json -d 'Print JSON for scripts (times as Unix seconds)'
complete -c twofold -n "__fish_twofold_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand doctor" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand status" -l user -d 'Act on this account instead of your own (admins only)' -r
complete -c twofold -n "__fish_twofold_using_subcommand status" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand status" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand status" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand status" -l json -d 'Print JSON for scripts (times as Unix seconds)'
complete -c twofold -n "__fish_twofold_using_subcommand status" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand status" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand backup-codes; and not __fish_seen_subcommand_from regenerate" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand backup-codes; and not __fish_seen_subcommand_from regenerate" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand backup-codes; and not __fish_seen_subcommand_from regenerate" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand backup-codes; and not __fish_seen_subcommand_from regenerate" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand backup-codes; and not __fish_seen_subcommand_from regenerate" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand backup-codes; and not __fish_seen_subcommand_from regenerate" -f -a "regenerate" -d 'Replace all backup codes with a fresh set (the old ones stop working)'
complete -c twofold -n "__fish_twofold_using_subcommand backup-codes; and __fish_seen_subcommand_from regenerate" -l user -d 'Act on this account instead of your own (admins only)' -r
complete -c twofold -n "__fish_twofold_using_subcommand backup-codes; and __fish_seen_subcommand_from regenerate" -l code -d 'The code; without it, it is read from the terminal with echo off, or as one line from stdin when stdin is not a terminal. A code on the command line is visible to other users in the process list: prefer stdin' -r
complete -c twofold -n "__fish_twofold_using_subcommand backup-codes; and __fish_seen_subcommand_from regenerate" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand backup-codes; and __fish_seen_subcommand_from regenerate" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand backup-codes; and __fish_seen_subcommand_from regenerate" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand backup-codes; and __fish_seen_subcommand_from regenerate" -l json -d 'Print JSON for scripts (times as Unix seconds)'
complete -c twofold -n "__fish_twofold_using_subcommand backup-codes; and __fish_seen_subcommand_from regenerate" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand backup-codes; and __fish_seen_subcommand_from regenerate" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand remove; and not __fish_seen_subcommand_from totp email sms fido2" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand remove; and not __fish_seen_subcommand_from totp email sms fido2" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand remove; and not __fish_seen_subcommand_from totp email sms fido2" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand remove; and not __fish_seen_subcommand_from totp email sms fido2" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand remove; and not __fish_seen_subcommand_from totp email sms fido2" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand remove; and not __fish_seen_subcommand_from totp email sms fido2" -f -a "totp" -d 'Remove the TOTP authenticator and the backup codes tied to it'
complete -c twofold -n "__fish_twofold_using_subcommand remove; and not __fish_seen_subcommand_from totp email sms fido2" -f -a "email" -d 'Remove the email address codes are sent to'
complete -c twofold -n "__fish_twofold_using_subcommand remove; and not __fish_seen_subcommand_from totp email sms fido2" -f -a "sms" -d 'Remove the phone number SMS codes are sent to'
complete -c twofold -n "__fish_twofold_using_subcommand remove; and not __fish_seen_subcommand_from totp email sms fido2" -f -a "fido2" -d 'Remove one FIDO2 security key (the backup codes go with the last factor)'
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from totp" -l user -d 'Act on this account instead of your own (admins only)' -r
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from totp" -l code -d 'The code; without it, it is read from the terminal with echo off, or as one line from stdin when stdin is not a terminal. A code on the command line is visible to other users in the process list: prefer stdin' -r
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from totp" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from totp" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from totp" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from totp" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from totp" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from email" -l user -d 'Act on this account instead of your own (admins only)' -r
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from email" -l code -d 'The code; without it, it is read from the terminal with echo off, or as one line from stdin when stdin is not a terminal. A code on the command line is visible to other users in the process list: prefer stdin' -r
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from email" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from email" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from email" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from email" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from email" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from sms" -l user -d 'Act on this account instead of your own (admins only)' -r
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from sms" -l code -d 'The code; without it, it is read from the terminal with echo off, or as one line from stdin when stdin is not a terminal. A code on the command line is visible to other users in the process list: prefer stdin' -r
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from sms" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from sms" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from sms" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from sms" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from sms" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from fido2" -l user -d 'Act on this account instead of your own (admins only)' -r
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from fido2" -l name -d 'The key\'s name, as `twofold status` lists it' -r
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from fido2" -l code -d 'The code; without it, it is read from the terminal with echo off, or as one line from stdin when stdin is not a terminal. A code on the command line is visible to other users in the process list: prefer stdin' -r
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from fido2" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from fido2" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from fido2" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from fido2" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand remove; and __fish_seen_subcommand_from fido2" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and not __fish_seen_subcommand_from disable list unlock locks grace enroll-token temp-code enroll import migrate hotp-resync" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and not __fish_seen_subcommand_from disable list unlock locks grace enroll-token temp-code enroll import migrate hotp-resync" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and not __fish_seen_subcommand_from disable list unlock locks grace enroll-token temp-code enroll import migrate hotp-resync" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and not __fish_seen_subcommand_from disable list unlock locks grace enroll-token temp-code enroll import migrate hotp-resync" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and not __fish_seen_subcommand_from disable list unlock locks grace enroll-token temp-code enroll import migrate hotp-resync" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and not __fish_seen_subcommand_from disable list unlock locks grace enroll-token temp-code enroll import migrate hotp-resync" -f -a "disable" -d 'Remove every factor of an account'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and not __fish_seen_subcommand_from disable list unlock locks grace enroll-token temp-code enroll import migrate hotp-resync" -f -a "list" -d 'List every account twofoldd knows'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and not __fish_seen_subcommand_from disable list unlock locks grace enroll-token temp-code enroll import migrate hotp-resync" -f -a "unlock" -d 'Clear every lock and failure count of an account'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and not __fish_seen_subcommand_from disable list unlock locks grace enroll-token temp-code enroll import migrate hotp-resync" -f -a "locks" -d 'List the locks in force (too many failed codes)'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and not __fish_seen_subcommand_from disable list unlock locks grace enroll-token temp-code enroll import migrate hotp-resync" -f -a "grace" -d 'Extend or reset an account\'s enrollment grace deadline (`unenrolled = "enroll"`)'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and not __fish_seen_subcommand_from disable list unlock locks grace enroll-token temp-code enroll import migrate hotp-resync" -f -a "enroll-token" -d 'Issue a one-time token that lets the account set up its first factor inside a login (`enroll_at_login = "token"`); shown once'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and not __fish_seen_subcommand_from disable list unlock locks grace enroll-token temp-code enroll import migrate hotp-resync" -f -a "temp-code" -d 'Issue a break-glass code for someone who lost every factor, instead of disabling MFA for them: it opens `--uses` logins (default 1) until it expires (default 1h), is shown once, and replaces an outstanding one. Issue it with `--uses 2` to let them log in and then replace the lost factor (`twofold enroll totp` asks for a code)'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and not __fish_seen_subcommand_from disable list unlock locks grace enroll-token temp-code enroll import migrate hotp-resync" -f -a "enroll" -d 'Enroll a factor for an account that the person cannot enroll themselves (a hardware token)'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and not __fish_seen_subcommand_from disable list unlock locks grace enroll-token temp-code enroll import migrate hotp-resync" -f -a "import" -d 'Import the secrets other OTP modules keep (a dry run unless --apply; the files are only read)'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and not __fish_seen_subcommand_from disable list unlock locks grace enroll-token temp-code enroll import migrate hotp-resync" -f -a "migrate" -d 'Move this host\'s SQLite state (enrollments, backup codes, replay ledger, locks, audit trail with its chain) into the fleet\'s PostgreSQL database named in [store]: a dry run unless --apply, once per host. Run as root with twofoldd stopped; it runs `twofoldd --migrate-from-sqlite` on the same configuration file'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and not __fish_seen_subcommand_from disable list unlock locks grace enroll-token temp-code enroll import migrate hotp-resync" -f -a "hotp-resync" -d 'Bring a hardware OATH token back in step from two consecutive codes (press it twice), when it was pressed far beyond the login window'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from disable" -l user -d 'The account' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from disable" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from disable" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from disable" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from disable" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from disable" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from list" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from list" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from list" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from list" -l json -d 'Print JSON for scripts (times as Unix seconds)'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from unlock" -l user -d 'The account' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from unlock" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from unlock" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from unlock" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from unlock" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from unlock" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from locks" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from locks" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from locks" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from locks" -l json -d 'Print JSON for scripts (times as Unix seconds)'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from locks" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from locks" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from grace" -l user -d 'The account' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from grace" -l extend -d 'Move the deadline this long past the later of now and the current deadline (e.g. `7d`)' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from grace" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from grace" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from grace" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from grace" -l reset -d 'Forget the deadline: the next login starts a fresh grace period'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from grace" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from grace" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from enroll-token" -l user -d 'The account' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from enroll-token" -l valid -d 'How long the token works (1m to 30d; default 24h)' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from enroll-token" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from enroll-token" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from enroll-token" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from enroll-token" -l json -d 'Print JSON for scripts (times as Unix seconds)'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from enroll-token" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from enroll-token" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from temp-code" -l user -d 'The account' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from temp-code" -l valid -d 'How long it works (1m to 7d; default 1h)' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from temp-code" -l uses -d 'How many logins it opens (1 to 10; default 1)' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from temp-code" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from temp-code" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from temp-code" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from temp-code" -l revoke -d 'Withdraw the outstanding code instead'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from temp-code" -l json -d 'Print JSON for scripts (times as Unix seconds)'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from temp-code" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from temp-code" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from enroll" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from enroll" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from enroll" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from enroll" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from enroll" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from enroll" -f -a "hotp" -d 'A hardware OATH token (HOTP, RFC 4226), from its secret. It counts at once; codes are accepted up to 10 presses ahead, each once'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from import" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from import" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from import" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from import" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from import" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from import" -f -a "google-authenticator" -d 'google-authenticator-libpam\'s ~/.google_authenticator: TOTP or HOTP secret, scratch codes (become backup codes, hashed); its window, rate-limit and reuse settings are reported'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from import" -f -a "oath" -d 'pam_oath\'s users.oath (HOTP and TOTP lines; counters kept)'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from import" -f -a "u2f-keys" -d 'pam-u2f\'s u2f_keys (old and new formats): each user\'s security keys, with the RP ID pam-u2f asserted them for, so the same keys log in'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from migrate" -l to -d 'Where to: `postgres` ([store] of the configuration)' -r -f -a "postgres\t'The fleet\'s PostgreSQL database ([store] backend = "postgres")'"
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from migrate" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from migrate" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from migrate" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from migrate" -l apply -d 'Write: move what the dry run shows'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from migrate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from migrate" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from hotp-resync" -l user -d 'The account' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from hotp-resync" -l name -d 'The token, when the account has several' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from hotp-resync" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from hotp-resync" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from hotp-resync" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from hotp-resync" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand admin; and __fish_seen_subcommand_from hotp-resync" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand config; and not __fish_seen_subcommand_from check" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand config; and not __fish_seen_subcommand_from check" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand config; and not __fish_seen_subcommand_from check" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand config; and not __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand config; and not __fish_seen_subcommand_from check" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand config; and not __fish_seen_subcommand_from check" -f -a "check" -d 'Check a configuration file; prints `OK: FILE` or the error (file:line: key) and exits 2'
complete -c twofold -n "__fish_twofold_using_subcommand config; and __fish_seen_subcommand_from check" -l file -d 'The file to check [default: --config, else /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand config; and __fish_seen_subcommand_from check" -l user -d 'Show the effective policy for this user (with --service): groups from the group database, and the rule that decided each setting' -r
complete -c twofold -n "__fish_twofold_using_subcommand config; and __fish_seen_subcommand_from check" -l service -d 'The PAM service of that login (e.g. sshd, sudo)' -r
complete -c twofold -n "__fish_twofold_using_subcommand config; and __fish_seen_subcommand_from check" -l rhost -d 'The remote host (PAM_RHOST) of that login, for trusted networks' -r
complete -c twofold -n "__fish_twofold_using_subcommand config; and __fish_seen_subcommand_from check" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand config; and __fish_seen_subcommand_from check" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand config; and __fish_seen_subcommand_from check" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand config; and __fish_seen_subcommand_from check" -l print -d 'Print the effective configuration, every option spelled out, before `OK`'
complete -c twofold -n "__fish_twofold_using_subcommand config; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand config; and __fish_seen_subcommand_from check" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand audit; and not __fish_seen_subcommand_from verify" -l user -d 'Only rows about this account' -r
complete -c twofold -n "__fish_twofold_using_subcommand audit; and not __fish_seen_subcommand_from verify" -l event -d 'Only this event (login_success, login_failure, login_denied, login_locked, login_skipped, lockout, unlock, enroll, factor_removed, backup_code_used, codes_regenerated, grace_started, admin, config_loaded, config_reloaded, config_reload_refused, audit_pruned, device_remembered, device_forgotten, security_key_refused)' -r
complete -c twofold -n "__fish_twofold_using_subcommand audit; and not __fish_seen_subcommand_from verify" -l service -d 'Only rows of this PAM service' -r
complete -c twofold -n "__fish_twofold_using_subcommand audit; and not __fish_seen_subcommand_from verify" -l since -d 'From: a duration ago (`1h`, `7d`), `@UNIXTIME`, or UTC `YYYY-MM-DD[THH:MM[:SS]]`' -r
complete -c twofold -n "__fish_twofold_using_subcommand audit; and not __fish_seen_subcommand_from verify" -l until -d 'Up to (same forms as --since)' -r
complete -c twofold -n "__fish_twofold_using_subcommand audit; and not __fish_seen_subcommand_from verify" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand audit; and not __fish_seen_subcommand_from verify" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand audit; and not __fish_seen_subcommand_from verify" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand audit; and not __fish_seen_subcommand_from verify" -l json -d 'Print one JSON object per line (times as Unix seconds)'
complete -c twofold -n "__fish_twofold_using_subcommand audit; and not __fish_seen_subcommand_from verify" -l follow -d 'Keep printing new rows as they are written (Ctrl-C stops)'
complete -c twofold -n "__fish_twofold_using_subcommand audit; and not __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand audit; and not __fish_seen_subcommand_from verify" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand audit; and not __fish_seen_subcommand_from verify" -f -a "verify" -d 'Check the hash chain; names the first row where it breaks (exit 8)'
complete -c twofold -n "__fish_twofold_using_subcommand audit; and __fish_seen_subcommand_from verify" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand audit; and __fish_seen_subcommand_from verify" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand audit; and __fish_seen_subcommand_from verify" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand audit; and __fish_seen_subcommand_from verify" -l json -d 'Print JSON for scripts (times as Unix seconds)'
complete -c twofold -n "__fish_twofold_using_subcommand audit; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand audit; and __fish_seen_subcommand_from verify" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand stats" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand stats" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand stats" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand stats" -l json -d 'Print JSON'
complete -c twofold -n "__fish_twofold_using_subcommand stats" -l prometheus -d 'Print the Prometheus text exposition format'
complete -c twofold -n "__fish_twofold_using_subcommand stats" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand stats" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand devices; and not __fish_seen_subcommand_from forget" -l user -d 'Act on this account instead of your own (admins only)' -r
complete -c twofold -n "__fish_twofold_using_subcommand devices; and not __fish_seen_subcommand_from forget" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand devices; and not __fish_seen_subcommand_from forget" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand devices; and not __fish_seen_subcommand_from forget" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand devices; and not __fish_seen_subcommand_from forget" -l json -d 'Print JSON for scripts (times as Unix seconds)'
complete -c twofold -n "__fish_twofold_using_subcommand devices; and not __fish_seen_subcommand_from forget" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand devices; and not __fish_seen_subcommand_from forget" -s V -l version -d 'Print version'
complete -c twofold -n "__fish_twofold_using_subcommand devices; and not __fish_seen_subcommand_from forget" -f -a "forget" -d 'Forget a remembered device (its next login asks for the second factor again)'
complete -c twofold -n "__fish_twofold_using_subcommand devices; and __fish_seen_subcommand_from forget" -l user -d 'Act on this account instead of your own (admins only)' -r
complete -c twofold -n "__fish_twofold_using_subcommand devices; and __fish_seen_subcommand_from forget" -l socket -d 'Daemon socket [default: [daemon].socket of the configuration, else /run/twofold/twofold.sock]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand devices; and __fish_seen_subcommand_from forget" -l config -d 'Configuration file to take the socket path from [default: /etc/twofold/twofold.toml]' -r -F
complete -c twofold -n "__fish_twofold_using_subcommand devices; and __fish_seen_subcommand_from forget" -l timeout -d 'Seconds to wait for the daemon to connect and to answer each request' -r
complete -c twofold -n "__fish_twofold_using_subcommand devices; and __fish_seen_subcommand_from forget" -l all -d 'Forget every remembered device of the account'
complete -c twofold -n "__fish_twofold_using_subcommand devices; and __fish_seen_subcommand_from forget" -s h -l help -d 'Print help'
complete -c twofold -n "__fish_twofold_using_subcommand devices; and __fish_seen_subcommand_from forget" -s V -l version -d 'Print version'
