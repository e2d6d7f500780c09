# scripts/debian-mirror.sh - sourced by scripts/vm.sh and bench/sid-root.sh.
# system_mirror prints the Debian mirror this system's own apt sources name
# (deb822 .sources first, then one-line .list entries; security mirrors left
# out), so the private sid/experimental set-ups use the same mirror and no
# host is written into the repository.
system_mirror() {
	{
		sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null
		sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\{0,1\}\([^[:space:]]*\).*/\2/p' \
			/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
	} | tr ' ' '\n' | grep -v -e security -e '^$' | head -n 1 || true
	# (|| true: a missing sources.list must not fail a caller under pipefail;
	# an empty answer is the caller's error to report)
}
