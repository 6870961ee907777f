/*
 * fota-posix: downloads a firmware image with fota on a POSIX host.
 *
 * A working example of the three hook tables (net.c, flash.c, and the system
 * hooks below) and of one fota_request(). Run `fota-posix --help`.
 *
 * stdout: at most an informational line, then `result: <code> <NAME>` as the
 * last line. stderr: progress (a redrawn bar on a terminal, a few plain lines
 * otherwise), errors and, with --verbose, fota's log. The exit status is the
 * fota result code (0 = FOTA_OK), or 14 (FOTA_ERR_INVALID_ARG) for a bad
 * command line. With --verbose, a request ended by SIGINT/SIGTERM also
 * prints `abort latency: <ms> ms` (signal to result callback) on stderr.
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "platform.h"

/* ---- system hooks ------------------------------------------------------ */

static bool verbose;

static void progress_retry(void *progress); /* below */

/*
 * sleep_ms hook: posix_sys_sleep_ms (sys.c), plus the progress display.
 *
 * fota sleeps in slices of at most FOTA_ABORT_SLICE_MS between retries, so
 * this is also where a new retry is shown (ctx is the progress display).
 */
static void sys_sleep_ms(void *ctx, uint32_t ms)
{
    if (ctx != NULL) {
        progress_retry(ctx);
    }
    posix_sys_sleep_ms(NULL, ms);
}

/*
 * log hook.
 * Contract: one line of `len` bytes (UTF-8, not NUL-terminated, no line
 * terminator) at `level` FOTA_LOG_ERROR..FOTA_LOG_DEBUG. Optional.
 * Printed to stderr only with --verbose.
 */
static void sys_log(void *ctx, int32_t level, const char *msg, size_t len)
{
    (void)ctx;
    static const char *const names[] = { "?", "error", "warn", "info", "debug" };
    if (!verbose) {
        return;
    }
    const char *name = (level >= FOTA_LOG_ERROR && level <= FOTA_LOG_DEBUG) ? names[level] : names[0];
    fprintf(stderr, "fota %s: %.*s\n", name, len > INT_MAX ? INT_MAX : (int)len, msg);
}

/* ---- progress ---------------------------------------------------------- */

typedef struct {
    bool tty;            /* stderr is a terminal: redraw one line */
    bool drawn;          /* something was printed (tty: a line to finish) */
    uint32_t start_ms;
    uint32_t last_ms;    /* when the last line/redraw was printed */
    int last_decile;     /* plain mode: 10% step of the last line, -1 none */
    uint32_t printed;    /* bytes shown by the last line/redraw */
    uint32_t written;    /* latest figures */
    uint32_t total;
    uint32_t retries;    /* reconnections so far (fota_get_progress) */
    uint32_t retries_shown; /* retries already announced */
    posix_flash_t *flash;   /* for the test-only crash point `byte` */
} progress_t;

static double mb_per_s(uint32_t bytes, uint32_t ms)
{
    return ms == 0 ? 0.0 : (double)bytes / 1e6 / ((double)ms / 1000.0);
}

static void progress_print(progress_t *p, uint32_t now)
{
    uint32_t ms = now - p->start_ms;
    double mib = (double)p->written / (1024.0 * 1024.0);
    char retry[24] = "";
    if (p->retries > 0) {
        snprintf(retry, sizeof retry, " retry %lu", (unsigned long)p->retries);
    }
    if (p->tty) {
        char bar[31];
        if (p->total > 0) {
            unsigned pct = (unsigned)((uint64_t)p->written * 100u / p->total);
            size_t fill = (size_t)((uint64_t)p->written * 30u / p->total);
            fill = fill > 30 ? 30 : fill; /* never trust figures to stay in range */
            memset(bar, '#', fill);
            memset(bar + fill, '.', 30 - fill);
            bar[30] = '\0';
            fprintf(stderr, "\r[%s] %3u%%  %.2f / %.2f MiB  %.1f MB/s%s ", bar, pct, mib,
                    (double)p->total / (1024.0 * 1024.0), mb_per_s(p->written, ms), retry);
        } else {
            fprintf(stderr, "\r%.2f MiB  %.1f MB/s%s ", mib, mb_per_s(p->written, ms), retry);
        }
    } else if (p->total > 0) {
        fprintf(stderr, "progress: %3u%% %lu/%lu bytes %.1f MB/s%s\n",
                (unsigned)((uint64_t)p->written * 100u / p->total), (unsigned long)p->written,
                (unsigned long)p->total, mb_per_s(p->written, ms), retry);
    } else {
        fprintf(stderr, "progress: %lu bytes %.1f MB/s%s\n", (unsigned long)p->written,
                mb_per_s(p->written, ms), retry);
    }
    fflush(stderr);
    p->drawn = true;
    p->last_ms = now;
    p->printed = p->written;
}

/*
 * fota's progress callback: runs after every flash write (often every few
 * KiB), so it only prints when it is worth it: a terminal is redrawn at most
 * 10 times a second; plain output gets one line per 10% step or per second.
 */
static void on_progress(uint32_t written, uint32_t total, void *user)
{
    progress_t *p = user;
    /* Test-only: a kill right after a write returned, or right after the
       last byte (FOTA_POSIX_CRASH=byte:N). */
    posix_crash_check(p->flash, "byte", written);
    uint32_t now = posix_sys_now_ms(NULL);
    fota_progress_t fp;
    fota_get_progress(&fp);
    p->written = written;
    p->total = total;
    if (fp.retries != p->retries) {
        /* A reconnection (possibly a restart from byte 0): show the next
           figures at once, whatever the 10% step. */
        p->retries = fp.retries;
        p->last_decile = -1;
        p->last_ms = now - 1000;
    }
    bool finished = total > 0 && written >= total;
    if (p->tty) {
        if (finished || !p->drawn || now - p->last_ms >= 100) {
            progress_print(p, now);
        }
        return;
    }
    int decile = total > 0 ? (int)((uint64_t)written * 10u / total) : -1;
    if (decile > p->last_decile || now - p->last_ms >= 1000) {
        p->last_decile = decile;
        progress_print(p, now);
    }
}

/* Called from the sleep hook: announces a retry that fota_get_progress()
   reports and that was not shown yet (tty: in the redrawn bar; plain: one
   `retry N at byte W` line). */
static void progress_retry(void *progress)
{
    progress_t *p = progress;
    fota_progress_t fp;
    fota_get_progress(&fp);
    if (fp.state != FOTA_STATE_WAITING_RETRY || fp.retries == p->retries_shown) {
        return;
    }
    p->retries = fp.retries;
    p->retries_shown = fp.retries;
    if (p->tty) {
        progress_print(p, posix_sys_now_ms(NULL));
    } else {
        fprintf(stderr, "progress: retry %lu at byte %lu of %lu\n", (unsigned long)fp.retries,
                (unsigned long)fp.bytes_written, (unsigned long)fp.total);
        fflush(stderr);
        p->drawn = true;
    }
}

/* Ends the progress display once the request is over: shows the final
   figures if the last line did not, and ends the terminal line. */
static void progress_finish(progress_t *p)
{
    if (p->written > 0 && (p->written != p->printed || !p->drawn)) {
        progress_print(p, posix_sys_now_ms(NULL));
    }
    if (p->tty && p->drawn) {
        fputc('\n', stderr);
    }
}

/* ---- Ctrl-C ------------------------------------------------------------ */

/* fota_abort() may be called from any task or interrupt, so from a signal
   handler too: the request ends within about FOTA_ABORT_SLICE_MS with
   FOTA_ERR_ABORTED and OUT.part is removed. A second Ctrl-C kills at once.

   The handler notes when the (first) signal came (clock_gettime is
   async-signal-safe) and the result callback when the request ended; with
   --verbose the difference is printed as the abort latency. */
static volatile sig_atomic_t signal_seen;
static struct timespec signal_at;
static struct timespec result_at;

static void on_signal(int sig)
{
    (void)sig;
    if (!signal_seen) {
        clock_gettime(CLOCK_MONOTONIC, &signal_at);
        signal_seen = 1;
    }
    fota_abort();
}

/* fota's result callback: runs exactly once, when the request is over. */
static void on_result(int32_t result, void *user)
{
    (void)result;
    (void)user;
    clock_gettime(CLOCK_MONOTONIC, &result_at);
}

static double elapsed_ms(const struct timespec *from, const struct timespec *to)
{
    return (double)(to->tv_sec - from->tv_sec) * 1e3 + (double)(to->tv_nsec - from->tv_nsec) / 1e6;
}

/* ---- command line ------------------------------------------------------ */

static void usage(FILE *out, const char *prog)
{
    fprintf(out,
        "Usage: %s [OPTIONS] URL\n"
        "       %s [OPTIONS] --project-key KEY [--version X.Y.Z] ...   (LuatOS IoT platform)\n"
        "\n"
        "Downloads a firmware image with the fota library over HTTP or HTTPS\n"
        "(TLS 1.3) and stores it in a file. The image is written to FILE.part and\n"
        "renamed to FILE only when it is complete and committed; a failed download\n"
        "leaves no FILE.part. https verifies the server's certificate chain (--ca),\n"
        "its host name and, with the system clock, its validity period.\n"
        "\n"
        "URL is http[s]://host[:port]/path[?query] (IPv6 hosts in brackets). When URL\n"
        "is omitted, --project-key is required and the LuatOS IoT platform is asked.\n"
        "\n"
        "Options:\n"
        "  --out FILE            where the image goes (default: firmware.bin)\n"
        "  --max-len BYTES       largest image accepted (default: 16777216 = 16 MiB;\n"
        "                        0 = no limit); a larger one fails with 9\n"
        "  --timeout MS          overall deadline of the request in milliseconds\n"
        "                        (default: %lu; 0 = the default)\n"
        "  --retries N           reconnections after a failure a new connection may\n"
        "                        cure: refused, dropped, reset, idle (default: %lu).\n"
        "                        A lost download continues with Range: bytes=N-\n"
        "                        (restarts from byte 0 if the server ignores it)\n"
        "  --retry-delay MS      pause before the first retry, doubled for each\n"
        "                        further one up to %lu ms (default: %lu; 0 = the\n"
        "                        default); the pauses stay within --timeout\n"
        "  --idle-timeout MS     longest wait for the next byte (default: %lu;\n"
        "                        0 = the default); then 7, or a retry\n"
        "  --ca FILE             CA certificate(s) for https servers: DER, or PEM\n"
        "                        with up to %d certificates (the one whose subject\n"
        "                        is the issuer of the server's chain is used)\n"
        "  --insecure            https without verifying the server's certificate\n"
        "                        (anyone on the path could send an image; fota\n"
        "                        logs a warning). Without --ca or --insecure,\n"
        "                        https fails with 11\n"
        "  --client-cert FILE    client certificate (PEM or DER, ECDSA P-256) for\n"
        "                        servers that ask for one; needs --client-key\n"
        "  --client-key FILE     its private key (PEM `EC PRIVATE KEY`, i.e. SEC1,\n"
        "                        unencrypted, or DER)\n"
        "  --max-fragment N      ask the https server for TLS records of at most N\n"
        "                        bytes: 512, 1024, 2048 or 4096 (default: 0 = no\n"
        "                        limit); other values give 14\n"
        "  --version X.Y.Z       current firmware version (sent as version=)\n"
        "  --project-key K       platform project key (sent as project_key=)\n"
        "  --imei ID             device id (sent as imei=)\n"
        "  --firmware-name NAME  firmware name (sent as firmware_name=)\n"
        "  --mac ID, --uid ID    device id sent as mac= or uid= (instead of imei=)\n"
        "  --port N              port when the URL names none (default: 80/443);\n"
        "                        not applied to a URL a redirect leads to\n"
        "  --max-redirects N     follow up to N redirects (default: 0 = a 3xx means\n"
        "                        \"no update\", 6, as in libfota; one more is 4)\n"
        "  --allow-insecure-redirect\n"
        "                        follow a redirect from https to http (default:\n"
        "                        refused with 11: it drops the server's\n"
        "                        authentication)\n"
        "  --method M            request method (default: GET)\n"
        "  --header 'Name: value'\n"
        "                        extra request header; may be repeated\n"
        "  --body-file FILE      request body (sent with Content-Length)\n"
        "  --no-show-url         keep the URL (device parameters) out of the\n"
        "                        --verbose log\n"
        "  --image-key FILE      the image must be an MCUboot image signed with\n"
        "                        this ECDSA P-256 public key (PEM or DER, e.g.\n"
        "                        `imgtool getpub -k key.pem -e pem`); else 10\n"
        "  --sha256 HEX          the image's expected SHA-256 (64 hex digits)\n"
        "  --image-len BYTES     the image's expected length\n"
        "  --allow-downgrade     accept a signed image older than --version\n"
        "  --security-counter N  the current security counter: a signed image\n"
        "                        needs a SEC_CNT TLV not below N\n"
        "  --state FILE          keep fota's resume record in FILE.0 / FILE.1: a\n"
        "                        download cut by a kill or a power loss continues\n"
        "                        from FILE.part on the next run (same URL, or same\n"
        "                        --sha256), proved by the server's ETag; prints\n"
        "                        `state saves: N` and `resumed from: N` on stderr\n"
        "  --state-interval BYTES\n"
        "                        image bytes between two saves of the record\n"
        "                        (default: 65536)\n"
        "  --discard-state       forget the record first (fota_state_discard):\n"
        "                        the download starts from byte 0\n"
        "  --recv-max BYTES      at most this many bytes per receive (default: as\n"
        "                        many as fota asks for), like a device's small\n"
        "                        TCP window\n"
        "  --no-readback         do not read the file back before committing\n"
        "                        (by default fota re-reads it and compares)\n"
        "  --verbose             print fota's log to stderr, and after SIGINT/SIGTERM\n"
        "                        `abort latency: <ms> ms` (signal to result)\n"
        "  --discard             keep nothing: the flash hooks drop every byte\n"
        "                        (--out is not written; for benchmarks)\n"
        "  --stack-report        run the request on a thread with a painted stack\n"
        "                        and print `stack: <bytes> bytes` (the deepest\n"
        "                        stack fota_request and the hooks used) on stderr\n"
        "  --help                print this help and exit 0\n"
        "\n"
        "Options take their value as the next argument or after '=' (--out=x.bin).\n"
        "The parameters set with --version, --project-key, --imei, --firmware-name\n"
        "are appended to the URL's query, unless the URL starts with ###.\n"
        "\n"
        "Environment: FOTA_HOSTS=\"name=addr[:port],...\" connects to addr (and\n"
        "port) instead of resolving name, e.g. iot.openluat.com=127.0.0.1:8080\n"
        "(IPv6 addresses in brackets); https still verifies the URL's name.\n"
        "\n"
        "Output: progress on stderr (a bar on a terminal, plain lines otherwise;\n"
        "`retry N` once fota reconnected); the last line on stdout is\n"
        "`result: <code> <NAME>`.\n"
        "\n"
        "Exit status: the fota result code, e.g.\n"
        "   0 FOTA_OK                 image downloaded and committed to FILE\n"
        "   1 FOTA_ERR_CONNECT        DNS lookup or TCP connection failed\n"
        "   2 FOTA_ERR_URL            URL malformed or unsupported\n"
        "   3 FOTA_ERR_DISCONNECTED   server closed before the image was complete\n"
        "                             (after --retries reconnections)\n"
        "   4 FOTA_ERR_RESPONSE       malformed or unexpected response\n"
        "   5 FOTA_ERR_PLATFORM_PARAM platform needs --project-key and X.Y.Z --version\n"
        "   6 FOTA_NO_UPDATE          server has nothing newer (HTTP status >= 300)\n"
        "   7 FOTA_ERR_TIMEOUT        --idle-timeout (after --retries) or --timeout passed\n"
        "   8 FOTA_ERR_FLASH          writing FILE.part or renaming it failed\n"
        "   9 FOTA_ERR_TOO_LARGE      image larger than --max-len\n"
        "  10 FOTA_ERR_VERIFY         the image failed a check: --sha256, --image-len,\n"
        "                             the server's Repr-Digest, --image-key (see\n"
        "                             `verify reason` on stderr), or the read-back\n"
        "  11 FOTA_ERR_TLS            TLS handshake or certificate verification failed\n"
        "                             (unknown CA, wrong host name, expired, not\n"
        "                             TLS 1.3, no --ca and no --insecure)\n"
        "  12 FOTA_ERR_ABORTED        interrupted (Ctrl-C, SIGTERM)\n"
        "  14 FOTA_ERR_INVALID_ARG    bad command line (unknown flag, bad number,\n"
        "                             unreadable --ca/--client-cert/--client-key\n"
        "                             file, no URL or project key; https and a bad\n"
        "                             --max-fragment or client certificate)\n"
        "  15 FOTA_ERR_PLATFORM       the platform refused (see --verbose)\n"
        "  (13: see fota.h)\n",
        prog, prog, (unsigned long)FOTA_DEFAULT_TIMEOUT_MS, (unsigned long)FOTA_DEFAULT_MAX_RETRIES,
        (unsigned long)FOTA_RETRY_DELAY_MAX_MS, (unsigned long)FOTA_DEFAULT_RETRY_DELAY_MS,
        (unsigned long)FOTA_DEFAULT_IDLE_TIMEOUT_MS, (int)FOTA_TLS_MAX_CAS);
}

typedef struct {
    const char *out;
    const char *url;
    const char *ca;
    const char *client_cert;
    const char *client_key;
    bool insecure;
    bool discard;
    bool stack_report;
    uint32_t max_fragment;
    const char *version;
    const char *project_key;
    const char *imei;
    const char *firmware_name;
    const char *mac;
    const char *uid;
    const char *method;
    const char *body_file;
    char headers[4096]; /* "Name: value" lines joined with CRLF */
    size_t headers_len;
    bool hide_url;
    bool allow_insecure_redirect;
    bool allow_downgrade;
    bool no_readback;
    bool discard_state;
    const char *state;
    uint32_t state_interval;
    uint32_t recv_max;
    const char *image_key;
    uint8_t sha256[32];
    bool has_sha256;
    uint32_t image_len;
    uint32_t security_counter;
    uint32_t port;
    uint32_t max_redirects;
    uint32_t max_len;
    uint32_t timeout_ms;
    uint32_t retries;
    uint32_t retry_delay_ms;
    uint32_t idle_timeout_ms;
} args_t;

/* Parses a decimal number in 0..UINT32_MAX; returns false if it is not one. */
static bool parse_u32(const char *s, uint32_t *out)
{
    if (*s < '0' || *s > '9') {
        return false; /* no sign, no space, not empty */
    }
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > UINT32_MAX) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* Parses 64 hex digits into 32 bytes; returns false if it is not that. */
static bool parse_hex32(const char *s, uint8_t out[32])
{
    if (strlen(s) != 64) {
        return false;
    }
    for (size_t i = 0; i < 32; i++) {
        unsigned v;
        char pair[3] = { s[2 * i], s[2 * i + 1], '\0' };
        char *end;
        if (!isxdigit((unsigned char)pair[0]) || !isxdigit((unsigned char)pair[1])) {
            return false;
        }
        v = (unsigned)strtoul(pair, &end, 16);
        out[i] = (uint8_t)v;
    }
    return true;
}

/* Returns 0, or -1 after printing what is wrong. `help` is set for --help. */
static int parse_args(int argc, char **argv, args_t *a, bool *help)
{
    static const char *const value_flags[] = {
        "--out", "--max-len", "--timeout", "--retries", "--retry-delay", "--idle-timeout",
        "--ca", "--client-cert", "--client-key", "--max-fragment",
        "--version", "--project-key", "--imei", "--firmware-name",
        "--mac", "--uid", "--port", "--max-redirects", "--method", "--header", "--body-file",
        "--image-key", "--sha256", "--image-len", "--security-counter",
        "--state", "--state-interval", "--recv-max",
    };
    bool only_positional = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (only_positional || arg[0] != '-' || arg[1] == '\0') {
            if (a->url != NULL) {
                fprintf(stderr, "fota-posix: more than one URL: %s\n", arg);
                return -1;
            }
            a->url = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_positional = true;
            continue;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            *help = true;
            return 0;
        }
        if (strcmp(arg, "--verbose") == 0 || strcmp(arg, "-v") == 0) {
            verbose = true;
            continue;
        }
        if (strcmp(arg, "--insecure") == 0) {
            a->insecure = true;
            continue;
        }
        if (strcmp(arg, "--discard") == 0) {
            a->discard = true;
            continue;
        }
        if (strcmp(arg, "--stack-report") == 0) {
            a->stack_report = true;
            continue;
        }
        if (strcmp(arg, "--no-show-url") == 0) {
            a->hide_url = true;
            continue;
        }
        if (strcmp(arg, "--allow-insecure-redirect") == 0) {
            a->allow_insecure_redirect = true;
            continue;
        }
        if (strcmp(arg, "--allow-downgrade") == 0) {
            a->allow_downgrade = true;
            continue;
        }
        if (strcmp(arg, "--no-readback") == 0) {
            a->no_readback = true;
            continue;
        }
        if (strcmp(arg, "--discard-state") == 0) {
            a->discard_state = true;
            continue;
        }
        /* --flag VALUE or --flag=VALUE */
        const char *eq = strchr(arg, '=');
        size_t name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        const char *name = NULL;
        for (size_t k = 0; k < sizeof value_flags / sizeof value_flags[0]; k++) {
            if (strlen(value_flags[k]) == name_len && strncmp(arg, value_flags[k], name_len) == 0) {
                name = value_flags[k];
            }
        }
        if (name == NULL) {
            fprintf(stderr, "fota-posix: unknown option: %s\n", arg);
            return -1;
        }
        const char *value = eq != NULL ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (value == NULL) {
            fprintf(stderr, "fota-posix: %s needs a value\n", name);
            return -1;
        }
        bool ok = true;
        if (strcmp(name, "--out") == 0) {
            ok = value[0] != '\0';
            a->out = value;
        } else if (strcmp(name, "--max-len") == 0) {
            ok = parse_u32(value, &a->max_len);
        } else if (strcmp(name, "--timeout") == 0) {
            ok = parse_u32(value, &a->timeout_ms);
        } else if (strcmp(name, "--retries") == 0) {
            ok = parse_u32(value, &a->retries);
        } else if (strcmp(name, "--retry-delay") == 0) {
            ok = parse_u32(value, &a->retry_delay_ms);
        } else if (strcmp(name, "--idle-timeout") == 0) {
            ok = parse_u32(value, &a->idle_timeout_ms);
        } else if (strcmp(name, "--ca") == 0) {
            a->ca = value;
        } else if (strcmp(name, "--client-cert") == 0) {
            a->client_cert = value;
        } else if (strcmp(name, "--client-key") == 0) {
            a->client_key = value;
        } else if (strcmp(name, "--max-fragment") == 0) {
            /* Range-checked here only to fit the field; fota itself rejects
               values other than 0/512/1024/2048/4096 (14) for https. */
            ok = parse_u32(value, &a->max_fragment) && a->max_fragment <= UINT16_MAX;
        } else if (strcmp(name, "--version") == 0) {
            a->version = value;
        } else if (strcmp(name, "--project-key") == 0) {
            a->project_key = value;
        } else if (strcmp(name, "--imei") == 0) {
            a->imei = value;
        } else if (strcmp(name, "--firmware-name") == 0) {
            a->firmware_name = value;
        } else if (strcmp(name, "--mac") == 0) {
            a->mac = value;
        } else if (strcmp(name, "--uid") == 0) {
            a->uid = value;
        } else if (strcmp(name, "--port") == 0) {
            ok = parse_u32(value, &a->port) && a->port <= UINT16_MAX;
        } else if (strcmp(name, "--max-redirects") == 0) {
            ok = parse_u32(value, &a->max_redirects) && a->max_redirects <= UINT8_MAX;
        } else if (strcmp(name, "--method") == 0) {
            a->method = value;
        } else if (strcmp(name, "--body-file") == 0) {
            a->body_file = value;
        } else if (strcmp(name, "--image-key") == 0) {
            a->image_key = value;
        } else if (strcmp(name, "--state") == 0) {
            ok = value[0] != '\0';
            a->state = value;
        } else if (strcmp(name, "--state-interval") == 0) {
            ok = parse_u32(value, &a->state_interval);
        } else if (strcmp(name, "--recv-max") == 0) {
            ok = parse_u32(value, &a->recv_max);
        } else if (strcmp(name, "--image-len") == 0) {
            ok = parse_u32(value, &a->image_len);
        } else if (strcmp(name, "--security-counter") == 0) {
            ok = parse_u32(value, &a->security_counter);
        } else if (strcmp(name, "--sha256") == 0) {
            ok = parse_hex32(value, a->sha256);
            a->has_sha256 = ok;
        } else if (strcmp(name, "--header") == 0) {
            /* fota checks the lines (no bare CR/LF: 14); here only the room. */
            size_t n = strlen(value);
            size_t sep = a->headers_len > 0 ? 2 : 0;
            ok = a->headers_len + sep + n < sizeof a->headers;
            if (ok) {
                memcpy(a->headers + a->headers_len, "\r\n", sep);
                memcpy(a->headers + a->headers_len + sep, value, n + 1);
                a->headers_len += sep + n;
            }
        }
        if (!ok) {
            fprintf(stderr, "fota-posix: bad value for %s: '%s'\n", name, value);
            return -1;
        }
    }
    if ((a->client_cert == NULL) != (a->client_key == NULL)) {
        fprintf(stderr, "fota-posix: --client-cert and --client-key go together\n");
        return -1;
    }
    if (a->url == NULL && a->project_key == NULL) {
        fprintf(stderr, "fota-posix: a URL (or --project-key for the LuatOS platform) is required\n");
        return -1;
    }
    return 0;
}

/* Reads a whole (small) file; returns a malloc'd buffer, or NULL. */
static uint8_t *read_file(const char *path, size_t *len)
{
    enum { MAX_CA = 1 << 20 };
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    uint8_t *buf = malloc(MAX_CA);
    size_t n = buf != NULL ? fread(buf, 1, MAX_CA, f) : 0;
    bool bad = buf == NULL || ferror(f) || n == 0 || (n == MAX_CA && fgetc(f) != EOF);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* Prints the last stdout line and gives the exit status. */
static int finish(int32_t code)
{
    printf("result: %ld %s\n", (long)code, fota_result_str(code));
    fflush(stdout);
    return (int)code;
}

/* ---- --stack-report ------------------------------------------------------ */

/* The request runs on a thread whose stack was filled with a pattern; the
   bytes no longer holding it after the thread ended are the deepest stack
   use. An empty thread's use (thread start-up; glibc also keeps the thread
   descriptor at the top of a caller-given stack) is measured the same way
   and subtracted, so the figure is fota_request() and the hooks it called. */
enum { STACK_BYTES = 1024 * 1024, STACK_PAINT = 0xA5 };

typedef struct {
    const fota_opts_t *opts; /* NULL: the empty thread */
    int32_t code;
} request_t;

static void *request_thread(void *arg)
{
    request_t *r = arg;
    if (r->opts != NULL) {
        r->code = fota_request(on_result, NULL, r->opts);
    }
    return NULL;
}

/* Runs `r` on a painted stack; returns the bytes of stack it used, or -1. */
static long run_on_painted_stack(request_t *r)
{
    static uint8_t stack[STACK_BYTES] __attribute__((aligned(4096)));
    memset(stack, STACK_PAINT, sizeof stack);
    pthread_attr_t attr;
    pthread_t thread;
    if (pthread_attr_init(&attr) != 0) {
        return -1;
    }
    int err = pthread_attr_setstack(&attr, stack, sizeof stack);
    if (err == 0) {
        err = pthread_create(&thread, &attr, request_thread, r);
    }
    pthread_attr_destroy(&attr);
    if (err != 0 || pthread_join(thread, NULL) != 0) {
        return -1;
    }
    size_t untouched = 0; /* the stack grows down: from the low end */
    while (untouched < sizeof stack && stack[untouched] == STACK_PAINT) {
        untouched++;
    }
    return (long)(sizeof stack - untouched);
}

/* fota_request() with the stack report on stderr. */
static int32_t request_reporting_stack(const fota_opts_t *opts)
{
    request_t empty = { NULL, FOTA_OK };
    request_t request = { opts, FOTA_ERR_INVALID_ARG };
    long base = run_on_painted_stack(&empty);
    long used = run_on_painted_stack(&request);
    if (base < 0 || used < 0) {
        fprintf(stderr, "fota-posix: --stack-report: cannot start a thread\n");
        return FOTA_ERR_INVALID_ARG;
    }
    fprintf(stderr, "stack: %ld bytes (fota_request and its hooks; %ld more for the thread)\n",
            used - base, base);
    return request.code;
}

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
    const char *prog = argc > 0 ? argv[0] : "fota-posix";
    args_t args = {
        .out = "firmware.bin",
        .max_len = 16u * 1024u * 1024u,
        .retries = FOTA_DEFAULT_MAX_RETRIES,
    };
    bool help = false;
    if (parse_args(argc, argv, &args, &help) != 0) {
        usage(stderr, prog);
        return finish(FOTA_ERR_INVALID_ARG);
    }
    if (help) {
        usage(stdout, prog);
        return 0;
    }

    /* Certificates and key: read whole into memory; fota parses them
       (PEM or DER) during the request. */
    struct {
        const char *flag, *path;
        uint8_t *data;
        size_t len;
    } files[] = {
        { "--ca", args.ca, NULL, 0 },
        { "--client-cert", args.client_cert, NULL, 0 },
        { "--client-key", args.client_key, NULL, 0 },
        { "--body-file", args.body_file, NULL, 0 },
        { "--image-key", args.image_key, NULL, 0 },
    };
    enum { N_FILES = sizeof files / sizeof files[0] };
    for (size_t k = 0; k < N_FILES; k++) {
        if (files[k].path != NULL && (files[k].data = read_file(files[k].path, &files[k].len)) == NULL) {
            fprintf(stderr, "fota-posix: cannot read %s file %s (missing, empty or over 1 MiB)\n",
                    files[k].flag, files[k].path);
            for (size_t j = 0; j < k; j++) {
                free(files[j].data);
            }
            return finish(FOTA_ERR_INVALID_ARG);
        }
    }
#define FREE_FILES()                          \
    do {                                      \
        for (size_t j = 0; j < N_FILES; j++) { \
            free(files[j].data);              \
        }                                     \
    } while (0)

    posix_flash_t flash;
    if (posix_flash_setup(&flash, args.discard ? NULL : args.out) != 0) {
        FREE_FILES();
        return finish(FOTA_ERR_FLASH);
    }

    progress_t progress = {
        .tty = isatty(STDERR_FILENO) == 1,
        .start_ms = posix_sys_now_ms(NULL),
        .last_decile = -1,
        .flash = &flash,
    };
    progress.last_ms = progress.start_ms;

    /* The three hook tables; fota_init() copies them. */
    fota_platform_t platform;
    memset(&platform, 0, sizeof platform);
    posix_net_ops(&platform.net);
    flash.state_path = args.state;
    posix_net_recv_max = args.recv_max;
    posix_flash_ops(&platform.flash, &flash, !args.no_readback);
    flash.trace = verbose;
    platform.sys.ctx = &progress; /* the sleep hook shows retries */
    platform.sys.now_ms = posix_sys_now_ms;
    platform.sys.sleep_ms = sys_sleep_ms;
    platform.sys.random = posix_sys_random;
    platform.sys.unix_time = posix_sys_unix_time;
    platform.sys.log = sys_log;
    int32_t code = fota_init(&platform);
    if (code != FOTA_OK) {
        fprintf(stderr, "fota-posix: fota_init failed\n");
        posix_flash_cleanup(&flash);
        FREE_FILES();
        return finish(code);
    }

    fota_opts_t opts;
    fota_opts_init(&opts);
    opts.url = args.url; /* NULL: the LuatOS IoT platform */
    opts.version = args.version;
    opts.project_key = args.project_key;
    opts.imei = args.imei;
    opts.firmware_name = args.firmware_name;
    opts.mac = args.mac;
    opts.uid = args.uid;
    opts.port = (uint16_t)args.port;
    opts.max_redirects = (uint8_t)args.max_redirects;
    opts.allow_insecure_redirect = args.allow_insecure_redirect;
    if (args.method != NULL) {
        opts.method = args.method;
    }
    opts.headers = args.headers_len > 0 ? args.headers : NULL;
    opts.body = files[3].data;
    opts.body_len = files[3].len;
    opts.image_key = files[4].data;
    opts.image_key_len = files[4].len;
    opts.image_sha256 = args.has_sha256 ? args.sha256 : NULL;
    opts.image_len = args.image_len;
    opts.allow_downgrade = args.allow_downgrade;
    opts.security_counter = args.security_counter;
    opts.timeout_ms = args.timeout_ms; /* 0: FOTA_DEFAULT_TIMEOUT_MS */
    opts.max_retries = args.retries;
    opts.retry_delay_ms = args.retry_delay_ms;   /* 0: FOTA_DEFAULT_RETRY_DELAY_MS */
    opts.idle_timeout_ms = args.idle_timeout_ms; /* 0: FOTA_DEFAULT_IDLE_TIMEOUT_MS */
    opts.server_cert = files[0].data; /* NULL: no CA (https then needs --insecure) */
    opts.server_cert_len = files[0].len;
    opts.client_cert = files[1].data;
    opts.client_cert_len = files[1].len;
    opts.client_key = files[2].data;
    opts.client_key_len = files[2].len;
    opts.tls_insecure = args.insecure;
    opts.tls_max_fragment = (uint16_t)args.max_fragment;
    opts.storage.max_len = args.max_len;
    opts.show_url = verbose && !args.hide_url;
    opts.progress_cb = on_progress;
    opts.progress_user = &progress;
    opts.state_interval = args.state_interval; /* 0: FOTA_DEFAULT_STATE_INTERVAL */
    if (args.discard_state) {
        int32_t discarded = fota_state_discard();
        if (discarded != FOTA_OK) {
            fprintf(stderr, "fota-posix: fota_state_discard: %s\n", fota_result_str(discarded));
        }
    }

    /* Ctrl-C / SIGTERM abort the request cleanly; the handler is reset
       after the first signal. The net and sleep hooks resume their wait
       after the signal, and fota waits in slices of FOTA_ABORT_SLICE_MS, so
       the request ends within that bound (what the abort test measures). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    code = args.stack_report ? request_reporting_stack(&opts) : fota_request(on_result, NULL, &opts);

    progress_finish(&progress);
    if (args.state != NULL) {
        fota_progress_t p;
        fota_get_progress(&p);
        fprintf(stderr, "state saves: %lu\nresumed from: %lu\nreceived: %llu bytes\n",
                flash.state_saves, (unsigned long)p.resumed_from,
                (unsigned long long)posix_net_received);
    }
    if (signal_seen && verbose) {
        fprintf(stderr, "abort latency: %.1f ms (signal to result callback, result %ld)\n",
                elapsed_ms(&signal_at, &result_at), (long)code);
    }
    if (code == FOTA_OK) {
        uint32_t ms = posix_sys_now_ms(NULL) - progress.start_ms;
        printf("wrote %s: %lu bytes in %.3f s (%.1f MB/s)\n", args.discard ? "nothing (--discard)" : args.out,
               (unsigned long)progress.written,
               (double)ms / 1000.0, mb_per_s(progress.written, ms));
    } else if (code == FOTA_ERR_VERIFY) {
        fota_progress_t p;
        fota_get_progress(&p);
        fprintf(stderr, "fota-posix: verify reason %lu\n", (unsigned long)p.verify_reason);
    } else if (code == FOTA_ERR_PLATFORM) {
        fota_progress_t p;
        fota_get_progress(&p);
        fprintf(stderr, "fota-posix: the platform refused with code %ld\n", (long)p.platform_code);
    }
    posix_flash_cleanup(&flash);
    FREE_FILES();
    return finish(code);
}
