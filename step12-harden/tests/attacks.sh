grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status
unshare -U -r -m sh -c 'mount -t tmpfs attack /mnt && echo "nested: mounted a tmpfs"'
/opt/attack/attack add_key && grep workshop /proc/keys
/opt/attack/attack tiocsti
head -2 /proc/self/cgroup
ls /sys/firmware
(true > /proc/sys/net/ipv4/ip_forward) && echo "ip_forward: open for writing"
