#!/bin/sh
# Start tor with a torrc rendered from the template, keep HiddenServicePort targets on the
# current address of their container (ingest may start after tor, or come back with another
# address: tor is told with SIGHUP), publish the onion host name for the other services, and
# keep the owner onion's client authorization on (the lock entry, before tor starts).
set -eu

TEMPLATE=/etc/tor/torrc.template
TORRC=/tmp/torrc
HOSTNAME_FILE=/var/lib/tor/onionpost/hostname
SHARED_HOSTNAME=/run/onionpost-tor/hostname
INTERVAL=${TOR_RESOLVE_INTERVAL:-5}
OWNER_DIR=/var/lib/tor/owner
OWNER_LOCK=$OWNER_DIR/authorized_clients/_lock.auth

# A name that does not exist (yet) must not hold up tor's start or the loop for long.
export RES_OPTIONS="timeout:1 attempts:1"
resolve() { getent ahostsv4 "$1" | awk 'NR == 1 { print $1 }'; }

# Print the template with each "HiddenServicePort VIRT HOST:PORT" target resolved; a host
# that does not resolve yet points at 127.0.0.1 (connection refused) until it does.
render() {
    while IFS= read -r line; do
        case $line in
            HiddenServicePort\ *\ unix:*) ;;
            HiddenServicePort\ *)
                # shellcheck disable=SC2086
                set -- $line
                address=$(resolve "${3%:*}")
                line="HiddenServicePort $2 ${address:-127.0.0.1}:${3##*:}"
                ;;
        esac
        printf '%s\n' "$line"
    done <"$TEMPLATE"
}

publish_hostname() {
    if [ -s "$HOSTNAME_FILE" ] && ! cmp -s "$HOSTNAME_FILE" "$SHARED_HOSTNAME"; then
        cp "$HOSTNAME_FILE" "$SHARED_HOSTNAME.new"
        chmod 644 "$SHARED_HOSTNAME.new"
        mv "$SHARED_HOSTNAME.new" "$SHARED_HOSTNAME"
    fi
}

# tor turns client authorization OFF when authorized_clients/ holds no .auth file: the owner
# onion would be public. The lock entry (docs/owner.md) keeps one there: a random 32-byte
# x25519 public key whose private half never existed (finding it is a discrete logarithm).
# `onionpost owner` never removes it. Prints "created" when it had to write it.
ensure_owner_lock() {
    [ -s "$OWNER_LOCK" ] && return 0
    # 0750: group 10002 (the cli) may read the host name and list the owners, not write.
    chmod 750 "$OWNER_DIR"
    mkdir -p -m 750 "$OWNER_DIR/authorized_clients"
    key=$(head -c 32 /dev/urandom | base32 | tr -d '=\n')
    umask 077
    printf 'descriptor:x25519:%s\n' "$key" >"$OWNER_LOCK.tmp"
    mv "$OWNER_LOCK.tmp" "$OWNER_LOCK"
    echo "created"
}

# Older stacks kept the control cookie beside the host name, where ingest could read it.
rm -f /run/onionpost-tor/control_auth_cookie
locked=$(ensure_owner_lock)
[ -z "$locked" ] || echo "onionpost-tor: owner onion lock entry created (client authorization on)"
render >"$TORRC"
tor --defaults-torrc /dev/null -f "$TORRC" &
tor_pid=$!
trap 'kill -TERM "$tor_pid" 2>/dev/null' TERM INT

while kill -0 "$tor_pid" 2>/dev/null; do
    publish_hostname
    # Whoever removed the lock entry: back before tor's next reload can make the onion public.
    locked=$(ensure_owner_lock)
    if [ -n "$locked" ]; then
        echo "onionpost-tor: owner onion lock entry was missing, restored; reloading tor"
        kill -HUP "$tor_pid"
    fi
    render >"$TORRC.new"
    if cmp -s "$TORRC" "$TORRC.new"; then
        rm -f "$TORRC.new"
    else
        mv "$TORRC.new" "$TORRC"
        echo "onionpost-tor: onion service target changed, reloading tor"
        kill -HUP "$tor_pid"
    fi
    # Poll every second until the onion host name is out, then every INTERVAL seconds.
    if [ -s "$SHARED_HOSTNAME" ]; then delay=$INTERVAL; else delay=1; fi
    sleep "$delay" &
    wait $! || true
done
wait "$tor_pid"
