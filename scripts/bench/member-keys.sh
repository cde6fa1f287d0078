# Sourced by scripts/bench.sh and scripts/bench-scenario.sh: member keys made through the API of
# the server on $PORT, with the platform key given as the first argument.
member_key() { # platform-key org -> a new member key's secret
  curl -s -X POST "http://127.0.0.1:$PORT/v1/orgs/$2/api-keys" -H "Authorization: Bearer $1" \
    -H 'Content-Type: application/json' -d '{"name": "bench", "role": "member"}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])'
}
# Each of the first 200 organisations of $2 (a file of ids) reads with its own member key (the key
# lookup is then part of every request, as it is for an integrator's backend): "org secret" lines.
member_keys() { # platform-key orgs-file
  head -n 200 "$2" | while read -r org; do echo "$org $(member_key "$1" "$org")"; done
}
