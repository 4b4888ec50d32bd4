# Sourced by scripts/test and scripts/demo: installs the Debian packages normlab needs, if any is missing.
# Works as root or with sudo; does nothing when everything is already there.
# libjs-chart.js: normlab-lab's report inlines Chart.js. Callers add their own: scripts/test the chromium that
# opens that report, scripts/demo the Fashion-MNIST data set.
normlab_packages=(cmake g++ make libopenblas-openmp-dev catch2 libstb-dev zlib1g-dev libcli11-dev nlohmann-json3-dev
                  libjs-chart.js "$@")
missing=()
for p in "${normlab_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "normlab: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
