#!/usr/bin/env bash
# Install the Debian packages the tests and benchmarks use, when missing.
set -euo pipefail

declare -A PACKAGE_OF=(
  [redis-server]=redis-server [swaks]=swaks [tor]=tor [tor-gencert]=tor
  [neomutt]=neomutt [smtp-source]=postfix [postfix]=postfix [sshd]=openssh-server
  [ssh]=openssh-client [rsync]=rsync [debootstrap]=debootstrap [bsd-mailx]=bsd-mailx
  [tmux]=tmux [gpg]=gnupg [gpgconf]=gpgconf
)
declare -A PATH_OF=([sshd]=/usr/sbin/sshd [postfix]=/usr/sbin/postfix)

missing=()
for tool in "${!PACKAGE_OF[@]}"; do
  path=${PATH_OF[$tool]:-}
  if [[ -n $path && -x $path ]] || command -v "$tool" >/dev/null 2>&1; then
    continue
  fi
  missing+=("${PACKAGE_OF[$tool]}")
done
# make test's own venv (python3 -m venv needs ensurepip, which Debian ships apart).
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)

if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "installing: ${missing[*]}"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  # postfix asks questions at install time: a local-only answer keeps it quiet.
  echo "postfix postfix/main_mailer_type select Local only" | $SUDO debconf-set-selections
  echo "postfix postfix/mailname string localhost" | $SUDO debconf-set-selections
  update_log=$(mktemp) log=$(mktemp)
  $SUDO apt-get update -qq >"$update_log" 2>&1 || true
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1 || {
    if grep -qE '^Err:|Failed to fetch' "$update_log"; then
      echo "onionpost: cannot reach the package mirrors (apt-get update:" \
        "$(grep -m1 -E '^Err:|Failed to fetch' "$update_log"))" >&2
    else
      echo "onionpost: apt-get install ${missing[*]} failed: $(grep -m1 '^E:' "$log" || tail -n1 "$log")" >&2
    fi
    exit 1
  }
  rm -f "$log" "$update_log"
fi
exit 0
