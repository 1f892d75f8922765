#!/usr/bin/env bash
# Installs a WebGPU-capable Vulkan driver for machines without a GPU: Mesa's lavapipe
# from bookworm-backports (Mesa 25). Bookworm's own Mesa 22.3 lavapipe is rejected by
# Dawn ("Vulkan shaderUniform*ArrayDynamicIndexing required").
set -euo pipefail
need_install() {
  ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 && return 0
  local v; v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || echo 0)
  dpkg --compare-versions "$v" lt 25 && return 0
  return 1
}
if ! need_install; then echo "setup-gpu: lavapipe (Mesa >= 25) already installed"; exit 0; fi
cmds='echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/backports.list
apt-get update
apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1'
if [ "$(id -u)" != 0 ]; then
  echo "setup-gpu: not root; run these as root to install lavapipe (software Vulkan):"
  echo "$cmds"
  exit 1
fi
. /etc/os-release
if [ "${VERSION_CODENAME:-}" != bookworm ]; then
  echo "setup-gpu: not Debian bookworm ($PRETTY_NAME); installing distribution mesa-vulkan-drivers (needs Mesa >= 25)"
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y mesa-vulkan-drivers libvulkan1
  exit 0
fi
echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/backports.list
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
echo "setup-gpu: installed $(dpkg-query -W -f='mesa-vulkan-drivers ${Version}' mesa-vulkan-drivers)"
