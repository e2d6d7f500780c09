/* `furing export [OPTIONS] IMAGE|URI MOUNTPOINT`: the command line around
 * one export (export_args.c parses its options, export_run.c starts it). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <furing/furing.h>

#include "cli.h"
#include "export_args.h"
#include "export_run.h"

int cmd_export(int argc, char **argv);

static const char export_help[] =
	"Usage: furing export [OPTIONS] IMAGE MOUNTPOINT\n"
	"       furing export [OPTIONS] NBD-URI MOUNTPOINT\n"
	"       furing export [OPTIONS] rbd:POOL[/NAMESPACE]/IMAGE[@SNAP][:KEY=VALUE...] MOUNTPOINT\n"
	"\n"
	"Present IMAGE (a raw disk image file or a block device, or with --format an image\n"
	"qemu-nbd reads) or the disk an NBD server offers (nbd://HOST[:PORT]/EXPORT,\n"
	"nbd+unix:///EXPORT?socket=PATH, nbds://... with TLS) or a Ceph RBD image or\n"
	"snapshot (rbd:, QEMU's syntax: :conf=FILE :id=NAME :keyring=FILE, other KEYs are\n"
	"Ceph options; a writable export holds the image's exclusive lock) as one regular file at\n"
	"MOUNTPOINT through FUSE. MOUNTPOINT is an existing regular file, or is created\n"
	"when missing and removed at exit. A dead furing mount left there by a killed\n"
	"server is unmounted first. Runs in the foreground until SIGINT/SIGTERM or\n"
	"until someone unmounts it, then prints one summary line.\n"
	"\n"
	"Export:\n"
	"  --writable            allow writes (default: read-only)\n"
	"  --growable            writes past the end and truncate grow the image (needs --writable)\n"
	"  --allow-other         let users other than the mounting one use the file\n"
	"  --backend-direct      open the image with O_DIRECT (no host page cache)\n"
	"  --writethrough        make every write durable before acknowledging it\n"
	"  --backend-io=auto|ring|inline  ring: reads and writes asynchronous on the worker's\n"
	"                        io_uring; inline: pread/pwrite in the worker; auto (default):\n"
	"                        inline when the image is in memory (tmpfs), else ring\n"
	"  --cache=none|kernel   none (default): direct I/O, every access reaches furing;\n"
	"                        kernel: the kernel page cache on the exported file (mmap works)\n"
	"  --kernel-passthrough=auto|on|off  the kernel's FUSE passthrough: the kernel reads\n"
	"                        (and writes) the image itself, and furing neither sees nor\n"
	"                        counts that I/O; auto (default): a read-only export's reads,\n"
	"                        when the image is a regular local file, furing runs as root\n"
	"                        and the kernel allows it, else one line says why not; on:\n"
	"                        refuse to start without it, and on a writable export take the\n"
	"                        writes through it as well (not with --growable or\n"
	"                        --writethrough): the kernel does not hold them to the\n"
	"                        export's size, a write past the end extends the image\n"
	"                        (said at exit); off: never\n"
	"  --format=FMT          IMAGE is in format FMT (qcow2, vmdk, vhdx, ...): served through a\n"
	"                        private qemu-nbd (qemu-utils), stopped at exit (default raw)\n"
	"  --timeout S           NBD: a request the server leaves unanswered for S seconds fails\n"
	"                        with EIO and its connection is reset; RBD: connecting and\n"
	"                        each request the cluster leaves unanswered fail after S seconds\n"
	"                        (EIO) (default 30; 0: requests never time out)\n"
	"\n"
	"Transport:\n"
	"  --io-uring=auto|on|off  FUSE-over-io_uring: auto (default) uses it when the kernel\n"
	"                        offers it, on refuses to start without it, off uses /dev/fuse\n"
	"  --threads N           worker threads (default: online CPUs)\n"
	"  --queue-depth N       requests in flight per ring queue, and per worker on /dev/fuse\n"
	"                        (default 32)\n"
	"  --payload-size BYTES  ring entry buffer and largest request (default 1M; K/M suffixes)\n"
	"  --busy-poll=US        before sleeping, a worker spins up to US microseconds for its\n"
	"                        next request while recent requests came that fast (default 50;\n"
	"                        0 turns it off): one request at a time skips a CPU wake-up\n"
	CLI_HELP_PIN
	CLI_HELP_LINUX73
	"\n"
	"Process:\n"
	"  --daemonize           run in the background; return once the mount serves requests\n"
	"  --pidfile FILE        write the serving process's pid to FILE\n"
	"  --debug               one line per request on stderr: transport, opcode, unique,\n"
	"                        offset/size, result\n"
	"  -h, --help            this text\n"
	"  -V, --version         the version\n"
	"\n"
	"Signals: SIGINT/SIGTERM unmount and exit; SIGUSR1 prints the counters.\n"
	"Exit status: 0 clean stop, 1 runtime error, 2 usage error.\n";

static void print_export_help(void)
{
	fputs(export_help, stdout);
}

static int export_option(void *args, int o, const char *v, char *err, size_t errlen)
{
	return export_args_option(args, o, v, err, errlen);
}

static void parse_export(int argc, char **argv, struct export_args *a, struct cli_session *cs)
{
	static const struct cli_command cmd = {
		.name = "export",
		.options = export_options,
		.option = export_option,
		.help = print_export_help,
		.operands = "IMAGE and MOUNTPOINT",
	};
	char err[512];

	cli_session_init(cs, "export");
	export_args_init(a, &cs->cfg);
	cli_parse_command(&cmd, argc, argv, a, cs, &a->image, &a->mountpoint);
	if (export_args_check(a, err, sizeof(err)) < 0)
		die(EXIT_USAGE, "%s", err);
}

int cmd_export(int argc, char **argv)
{
	struct cli_session cs;
	struct export_args a;
	struct export_run r;
	char err[2048];

	parse_export(argc, argv, &a, &cs);

	/* Before the export opens: a qemu-nbd it starts must be the serving
	 * process's child, and its connections the serving process's. */
	cli_daemonize(&cs);
	if (export_run_start(&r, &a, true, err, sizeof(err)) < 0)
		die(EXIT_RUNTIME, "%s", err);
	int code = EXIT_RUNTIME;
	if (cli_session_started(&cs, r.s) == 0) {
		fprintf(stderr, "furing: %s\n", r.serving);
		code = cli_session_serve(&cs, r.s);
	}
	if (export_run_finish(&r, &a, err, sizeof(err)) < 0 && code == 0)
		code = EXIT_RUNTIME;
	if (err[0])
		fprintf(stderr, "furing: warning: %s\n", err);
	return code;
}
