#!/bin/sh
# Start tor with a torrc rendered from the template, keep HiddenServicePort targets on the
# current address of their container (ingest may start after tor, or come back with another
# address: tor is told with SIGHUP), and publish the onion host name for the other services.
set -eu

TEMPLATE=/etc/tor/torrc.template
TORRC=/tmp/torrc
HOSTNAME_FILE=/var/lib/tor/onionpost/hostname
SHARED_HOSTNAME=/run/onionpost-tor/hostname
INTERVAL=${TOR_RESOLVE_INTERVAL:-5}

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

# Older stacks kept the control cookie beside the host name, where ingest could read it.
rm -f /run/onionpost-tor/control_auth_cookie
render >"$TORRC"
tor --defaults-torrc /dev/null -f "$TORRC" &
tor_pid=$!
trap 'kill -TERM "$tor_pid" 2>/dev/null' TERM INT

while kill -0 "$tor_pid" 2>/dev/null; do
    publish_hostname
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
