# Sourced by the benchmark scripts.
#
# install_missing_packages COMMAND...: installs, with apt-get, the Debian package of each
# COMMAND not on the PATH (nginx comes from nginx-light).
install_missing_packages() {
  local command missing=()
  for command in "$@"; do
    if ! command -v "$command" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$command ]]; then
      case $command in
        nginx) missing+=(nginx-light) ;;
        *) missing+=("$command") ;;
      esac
    fi
  done
  (( ${#missing[@]} )) || return 0
  printf 'bench: installing %s\n' "${missing[*]}" >&2
  if ! command -v apt-get >/dev/null 2>&1; then
    printf 'bench: need %s (Debian packages) and apt-get is not available\n' "${missing[*]}" >&2
    return 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}
