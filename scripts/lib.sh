# Shared by the provisioning scripts: logging and Debian package installation.
log() { printf '[%s] %s\n' "${LOG_TAG:-provision}" "$*" >&2; }
die() { printf '[%s] error: %s\n' "${LOG_TAG:-provision}" "$*" >&2; exit 1; }

sudo_cmd=()
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then sudo_cmd=(sudo); fi

# apt_install PACKAGE...: installs Debian packages (root or sudo), failing with a clear message.
apt_install() {
  command -v apt-get >/dev/null || die "apt-get is needed to install $*"
  [ "$(id -u)" = 0 ] || [ "${#sudo_cmd[@]}" -gt 0 ] || die "installing Debian packages ($*) needs root or sudo"
  log "installing Debian packages: $*"
  "${sudo_cmd[@]}" apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$@" >&2 \
    || die "apt-get install $* failed"
}
