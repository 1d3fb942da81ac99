#!/bin/sh
# The owner sshd: its host key is made once on its volume (owner-hostkeys: the laptop's
# known_hosts pins it), then sshd runs in the foreground, logging to stderr.
set -eu

KEY=/var/lib/onionpost/owner-hostkeys/ssh_host_ed25519_key

if [ ! -s "$KEY" ]; then
    rm -f "$KEY.new" "$KEY.new.pub"
    # No comment: ssh-keygen's default names the container's host name.
    ssh-keygen -q -t ed25519 -N '' -C '' -f "$KEY.new"
    mv "$KEY.new.pub" "$KEY.pub"
    mv "$KEY.new" "$KEY"
    echo "onionpost-owner: made the sshd host key ($(ssh-keygen -l -f "$KEY.pub" | cut -d' ' -f2))"
fi
exec /usr/sbin/sshd -D -e -f /etc/onionpost-owner/sshd_config
