/* The furing command line: `furing COMMAND [OPTIONS] ...`.
 *
 * Exit codes: 0 clean stop, 1 runtime error (files, mount, kernel), 2 usage
 * error. Every error is one line on stderr starting with "furing: ". */
#include <stdio.h>
#include <string.h>

#include <furing/furing.h>

#include "cli.h"

int cmd_export(int argc, char **argv);      /* export_cmd.c */
int cmd_passthrough(int argc, char **argv); /* passthrough_cmd.c */
int cmd_daemon(int argc, char **argv);      /* daemon.c */
int cmd_ctl(int argc, char **argv);         /* ctl.c */

static const char main_help[] =
	"Usage: furing COMMAND [OPTIONS] ...\n"
	"\n"
	"Commands:\n"
	"  export       present a raw disk image or block device as one file (furing export --help)\n"
	"  passthrough  mirror a directory tree at a mountpoint (furing passthrough --help)\n"
	"  daemon       serve many exports, added and removed over a control socket (furing daemon --help)\n"
	"  ctl          send one command to a daemon's control socket (furing ctl --help)\n"
	"\n"
	"  -h, --help     this text\n"
	"  -V, --version  the version\n";

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "furing: missing command (see furing --help)\n");
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		fputs(main_help, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("furing %s\n", furing_version());
		return 0;
	}
	if (!strcmp(argv[1], "export"))
		return cmd_export(argc - 1, argv + 1);
	if (!strcmp(argv[1], "passthrough"))
		return cmd_passthrough(argc - 1, argv + 1);
	if (!strcmp(argv[1], "daemon"))
		return cmd_daemon(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ctl"))
		return cmd_ctl(argc - 1, argv + 1);
	fprintf(stderr, "furing: unknown command '%s' (see furing --help)\n", argv[1]);
	return EXIT_USAGE;
}
