#!/bin/bash
# Linux reference for ntrs's disk benchmarks (issue 13): 4 KiB O_DIRECT reads
# at random 4 KiB-aligned offsets of a raw disk on QEMU q35's ICH9 AHCI
# controller, the controller and attachment ntrs's own boots use
# (`-machine q35 -drive format=raw,file=...`, xtask/src/qemu.rs).
#
# Recipe of ../shared/bench/linux-reference.sh (Debian's Linux 6.1 + busybox
# initramfs, QEMU TCG, default -cpu, 512 MiB, one processor under
# `-icount shift=0,sleep=off`, so one virtual nanosecond is one retired guest
# instruction) with two changes: the generic Debian kernel (the cloud kernel
# has no AHCI driver) with its ahci/libata/sd modules in the initramfs, and a
# disk.
#
# A synchronous read blocks: the CPU halts until QEMU completes the DMA, and
# under `sleep=off` the virtual clock jumps over the halt. So the program also
# reads cpu 0's idle time (`idle_sleeptime` + `iowait_sleeptime` in
# /proc/timer_list, ns) and
# prints both:
#   disk_read_4k_random_direct_total_icount  virtual time per read (includes the halt)
#   disk_read_4k_random_direct_busy_icount   minus the idle time: the guest
#       instructions of one read (system call, block layer, SCSI, libata,
#       AHCI, interrupt, softirq completion, two context switches)
# Output lines: `BENCH <name> <n> instructions`. Needs apt-get, gcc, cpio.
set -euo pipefail
work=${REFBENCH_WORK:-$HOME/.cache/refbench-linux-disk}
KVER=${KVER:-6.1.0-50-amd64}
N=${N:-2000}
mkdir -p "$work" && cd "$work"
command -v qemu-system-x86_64 >/dev/null || apt-get install -y qemu-system-x86 >/dev/null
command -v cpio >/dev/null || apt-get install -y cpio >/dev/null
if [ ! -f "k-$KVER/boot/vmlinuz" ]; then
  apt-get download "linux-image-$KVER" >/dev/null 2>&1
  mkdir -p "k-$KVER" && dpkg -x linux-image-"$KVER"_*.deb "k-$KVER"
  ln -sf "$(basename "$(ls "k-$KVER"/boot/vmlinuz-*)")" "k-$KVER/boot/vmlinuz"
fi
if [ ! -f bb/bin/busybox ]; then
  apt-get download busybox-static >/dev/null 2>&1
  mkdir -p bb && dpkg -x busybox-static*.deb bb
fi

cat > bench-disk.c <<'EOC'
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

static long long now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000LL+t.tv_nsec;}
/* cpu 0's idle time in ns: .idle_sleeptime + .iowait_sleeptime of the first
   tick_sched in /proc/timer_list (a halt while a task waits for I/O counts
   as iowait, not idle). */
static long long field(const char*buf,const char*name){
  const char*p=strstr(buf,name); if(!p) return -1; p=strchr(p,':'); return p?atoll(p+1):-1; }
static long long idle_ns(void){
  static char buf[1<<20]; int fd=open("/proc/timer_list",O_RDONLY); if(fd<0) return -1;
  long n=0,r; while((r=read(fd,buf+n,sizeof buf-1-n))>0) n+=r; close(fd); buf[n]=0;
  long long a=field(buf,".idle_sleeptime"), b=field(buf,".iowait_sleeptime");
  return a<0||b<0?-1:a+b; }
int main(int argc,char**argv){
  int n=argc>1?atoi(argv[1]):2000;
  int fd=open("/dev/sda",O_RDONLY|O_DIRECT); if(fd<0){perror("open /dev/sda");return 1;}
  unsigned long long size=0; if(ioctl(fd,BLKGETSIZE64,&size)||size<(1<<20)){printf("INFO bad disk size\n");return 1;}
  void*buf; if(posix_memalign(&buf,4096,4096)) return 1;
  unsigned long long blocks=size/4096, x=0x9E3779B97F4A7C15ULL;
  for(int pass=0;pass<2;pass++){ /* pass 0 warms the path up */
    int reps=pass?n:200; long long i0=idle_ns(), t=now();
    for(int i=0;i<reps;i++){ x=x*6364136223846793005ULL+1442695040888963407ULL;
      off_t off=(off_t)((x>>20)%blocks*4096);
      if(pread(fd,buf,4096,off)!=4096){printf("INFO read at %lld failed\n",(long long)off);return 1;} }
    long long span=now()-t, idle=idle_ns()-i0;
    if(pass){ printf("BENCH disk_read_4k_random_direct_total %.1f ns\n",(double)span/reps);
      if(i0>=0) printf("BENCH disk_read_4k_random_direct_busy %.1f ns\n",(double)(span-idle)/reps);
      else printf("INFO no idle_sleeptime in /proc/timer_list\n"); } }
  return 0; }
EOC
gcc -O2 -static bench-disk.c -o bench-disk
rm -rf initrd && mkdir -p initrd/bin initrd/dev initrd/proc initrd/sys initrd/lib
cp bb/bin/busybox initrd/bin/ && cp bench-disk initrd/bin/bench
mods="scsi_common scsi_mod libata libahci ahci crct10dif_common crct10dif_generic crc-t10dif crc64 crc64_rocksoft_generic crc64-rocksoft t10-pi sd_mod"
for m in $mods; do cp "$(find "k-$KVER/lib/modules" -name "$m.ko" | head -1)" initrd/lib/; done
cat > initrd/init <<EOI
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
for m in $mods; do /bin/busybox insmod /lib/\$m.ko || echo "INFO insmod \$m failed"; done
i=0; while [ ! -b /dev/sda ] && [ \$i -lt 100 ]; do /bin/busybox sleep 0.1; i=\$((i+1)); done
/bin/bench $N
/bin/busybox poweroff -f
EOI
chmod +x initrd/init
(cd initrd && find . | cpio -o -H newc 2>/dev/null | gzip > ../initrd-disk.gz)
[ -f disk.raw ] || head -c $((64 << 20)) /dev/urandom > disk.raw
log=serial-disk.log
timeout 1800 qemu-system-x86_64 -accel tcg -icount shift=0,sleep=off -machine q35 -smp 1 -m 512 \
  -display none -serial "file:$log" -monitor none -drive format=raw,file=disk.raw \
  -kernel "k-$KVER/boot/vmlinuz" -initrd initrd-disk.gz -append "console=ttyS0 quiet mitigations=off" \
  -no-reboot -net none || echo "INFO qemu exit status $?"
tr -d '\r' < "$log" | grep -E "^(BENCH|INFO)" | \
  awk '$1=="BENCH" && $4=="ns" {print "BENCH " $2 "_icount " $3 " instructions"; next} {print}' || true
