/*
 * cli.h: what the load tools (tt-traffic, tt-history) share around their
 * work: messages, the option table and its parser, the ingest URL, the
 * key file and the clock.
 *
 * Options are a table of struct cli_opt, each naming a field of the
 * tool's own configuration struct by offset: strings store the argument
 * pointer, flags an int 1, numbers a double checked against [lo, hi]
 * (whole numbers must also be integral).  Not thread-safe where it says
 * so: cli_prog is set once by main().
 */
#ifndef TT_CLI_H
#define TT_CLI_H

#include <stddef.h>
#include <stdio.h>

/* The program name that prefixes messages ("tt-traffic"); set by main. */
extern const char *cli_prog;

/* Print "PROG: message" and a newline to stderr. */
__attribute__((format(printf, 1, 2))) void cli_msg(const char *fmt, ...);

struct cli_opt {
    const char *name;
    char kind;     /* s string, f flag, d number, w whole number */
    size_t off;    /* offset of the field in the tool's config struct */
    double lo, hi; /* bounds of a number */
    const char *help;
};

/* Print the usage line(s) head, then one line per option, to f. */
void cli_usage(FILE *f, const char *head, const struct cli_opt *opts, int n);

/* Parse argv into cfg by the table (--help prints the usage to stdout and
 * exits 0).  Returns 0, or 2 after a message and the usage on stderr (an
 * unknown option, a bad value, or an argument that is not an option). */
int cli_parse(void *cfg, const char *head, const struct cli_opt *opts, int n,
              int argc, char **argv);

/* Turn --url's base URL into the ingest URL base/api/v1/events in out (n
 * bytes).  Returns 0, or 2 after a message. */
int cli_events_url(const char *arg, char *out, size_t n);

/* Read the key from path into buf: its first line that is neither empty
 * nor a '#' comment, trimmed.  Returns 0, or -1 if there is none (yet). */
int cli_read_key_file(const char *path, char *buf, size_t n);

/* The target options of a load tool: --url (into the events URL url, n
 * bytes) and exactly one of --key and --key-file.  Returns 0, or 2 after
 * a message and the usage (head, opts). */
int cli_target(const char *url_arg, const char *key, const char *key_file,
               char *url, size_t n, const char *head,
               const struct cli_opt *opts, int nopts);

/* --key into buf (n bytes): 0, 1 when it was not given, -1 after a
 * message when empty or too long. */
int cli_key_arg(const char *key, char *buf, size_t n);

/* The monotonic clock in seconds. */
double cli_mono_now(void);

#endif
