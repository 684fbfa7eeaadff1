# Shared by scripts/camera-vm and scripts/ble-vm: Debian's current kernel
# for this release, from its package, unpacked under "$1" (vmlinuz and
# kernel/lib/modules), downloaded once. Sets K to its version.
vm_kernel() {
    local vm=$1
    if [ ! -f "$vm/vmlinuz" ] || [ ! -d "$vm/kernel/lib/modules" ]; then
        rm -rf "$vm/debs" "$vm/kernel"; mkdir -p "$vm/debs" "$vm/kernel"
        local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
        (cd "$vm/debs" && { apt-get download linux-image-amd64 2>/dev/null \
            || { $sudo apt-get update -qq && apt-get download linux-image-amd64 2>/dev/null; }; })
        local image
        image=$(dpkg-deb -f "$vm"/debs/linux-image-amd64_*.deb Depends | grep -o 'linux-image-[0-9][^ ,]*' | head -1)
        (cd "$vm/debs" && apt-get download "$image" 2>/dev/null)
        dpkg-deb -x "$vm"/debs/"$image"_*.deb "$vm/kernel"
        # Newer packages keep modules under usr/lib.
        [ -d "$vm/kernel/lib/modules" ] || ln -s usr/lib "$vm/kernel/lib"
        cp "$vm"/kernel/boot/vmlinuz-* "$vm/vmlinuz"
        rm -rf "$vm/debs" "$vm/initrd.cpio.gz"
    fi
    K=$(ls "$vm/kernel/lib/modules")
}

# Copies modules "$@" and everything they depend on from the unpacked
# kernel in "$VM" into the initramfs tree "$R".
vm_modules() {
    depmod -b "$VM/kernel" "$K"
    for m in "$@"; do
        modprobe -d "$VM/kernel" -S "$K" --show-depends "$m" | awk '$1=="insmod"{print $2}' | while read -r f; do
            rel=${f#"$VM/kernel/lib/modules/$K/"}
            mkdir -p "$R/lib/modules/$K/$(dirname "$rel")"
            cp "$f" "$R/lib/modules/$K/$rel"
        done
    done
    cp "$VM/kernel/lib/modules/$K"/modules.{order,builtin,builtin.modinfo} "$R/lib/modules/$K/"
    depmod -b "$R" "$K"
}

# The path of the test binary `$2` of package `$1`, built (not run) here.
# Built with the whole workspace selected, so that every dependency gets
# the same features as in `cargo test --workspace` and is reused from that
# build: `-p` alone would unify features differently and build the whole
# dependency tree a second time (minutes, and some 25 GB of disk).
vm_test_binary() {
    cargo test --workspace --test "$2" --locked --no-run --message-format=json \
        | python3 -c 'import json,sys
pkg, test = sys.argv[1], sys.argv[2]
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    # package_id: "path+file:///…/node#strand-node@0.1.0" or "…/sync#0.1.0"
    pid = m["package_id"]
    name = pid.split("#")[1].split("@")[0] if "@" in pid.split("#")[1] else pid.split("#")[0].rstrip("/").split("/")[-1]
    if m["target"]["name"] == test and name == pkg:
        print(m["executable"])' "$1" "$2"
}
