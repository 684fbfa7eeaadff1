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
vm_test_binary() {
    cargo test -p "$1" --test "$2" --locked --no-run --message-format=json \
        | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$2"
}
