#!/usr/bin/env sh
# Write the stack's secret files under deploy/secrets/ (kept out of git), once.
# Existing files are left alone, so re-running never changes a password under a running stack.
#   deploy/secrets.sh                 random values
#   APIMIRROR_API_TOKENS=tok1,tok2 deploy/secrets.sh   choose the API write tokens
set -eu
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
mkdir -p "$dir"
chmod 700 "$dir"

rand() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }

put() {  # put NAME VALUE: write the file unless it exists
  if [ -s "$dir/$1" ]; then echo "kept    $dir/$1"; return; fi
  printf '%s' "$2" >"$dir/$1"
  # World-readable file inside a 0700 directory: only you can reach it on the host, while
  # the non-root users inside the containers can read the bind-mounted copy (plain compose).
  chmod 444 "$dir/$1"
  echo "created $dir/$1"
}

put mongo_root_password "$(rand)"
# The URL embeds the same password; hex needs no URL escaping.
put mongodb_url "mongodb://root:$(cat "$dir/mongo_root_password")@mongo:27017/?authSource=admin"
put api_tokens "${APIMIRROR_API_TOKENS:-$(rand)}"
put grafana_admin_password "$(rand)"
