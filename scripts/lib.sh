# Helpers the measuring scripts share; `source scripts/lib.sh` after `cd` to the repository root.

# Waits until something accepts connections on 127.0.0.1:$1, for at most $2 tenths of a second
# [100: 10 s; more for a server under valgrind]; fails the script if nothing does.
wait_port() {
    for _ in $(seq "${2:-100}"); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "server on port $1 did not start" >&2
    exit 1
}

# Reads numbers, one per line, and prints "median (min-max)" with printf format $1 [%s (%s-%s)];
# prints nothing for no numbers.
median_spread() {
    sort -g | awk -v f="${1:-%s (%s-%s)}" '{v[NR] = $1} END {
        if (!NR) exit
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf f, m, v[1], v[NR] }'
}

# Prints the user and system CPU ticks of process $1 (all its threads), space-separated.
cpu_ticks() {
    awk '{print $14, $15}' "/proc/$1/stat"
}

# A keep-alive client: sends `GET /healthz` $2 times, one after another, to 127.0.0.1:$1 and
# reads each answer whole.
healthz_client() {
    python3 - "$1" "$2" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
buf = b""
for _ in range(n):
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            length = int(buf[:end].lower().split(b"content-length:")[1].split(b"\r\n")[0])
            if len(buf) >= end + 4 + length:
                buf = buf[end + 4 + length:]
                break
        buf += s.recv(65536)
PY
}
