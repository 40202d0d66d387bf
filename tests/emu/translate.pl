#!/usr/bin/perl
# tests/emu/translate.pl SOURCE > COPY: the one step between a CUDA source and the emulated test build
# (tests/emu/cuda_emu.h says why and how the emulation runs it). The sources stay plain CUDA; the copy differs in
# two places, each kept on its own line so compiler messages point at the original lines:
#   kernel<<<grid, block[, smem[, stream]]>>>(args)   ->  emu_launch(__FILE__, __LINE__, "kernel", kernel,
#                                                          emu::config(grid, block[, smem[, stream]]), args)
#   extern __shared__ T name[];                       ->  T* name = (T*)emu::dynamic_shared();
# `kernel` may be a template-id (attention_flash_forward_kernel<HS>); the configuration may span lines.
use strict;
use warnings;

my $path = $ARGV[0] or die "usage: translate.pl SOURCE\n";
open(my $in, '<', $path) or die "translate.pl: $path: $!\n";
local $/;
my $src = <$in>;
close($in);

# a launch: an identifier with optional template arguments, <<<, the configuration (no >>> inside), >>>, (
$src =~ s{\b([A-Za-z_]\w*(?:\s*<[^<>;()]*>)?)\s*<<<(.*?)>>>\s*\((\s*\))?}{
    my ($kernel, $config, $empty) = ($1, $2, $3);
    (my $name = $kernel) =~ s/\s+//g;
    "emu_launch(__FILE__, __LINE__, \"$name\", $kernel, emu::config($config)" . ($empty ? ")" : ", ")
}gse;

# dynamic shared memory: one pointer per block, sized by the launch
$src =~ s{\bextern\s+__shared__\s+((?:__align__\s*\(\s*\d+\s*\)\s*)?)([\w\s:]+?)\s*(\w+)\s*\[\s*\]\s*;}{
    my ($align, $type, $name) = ($1, $2, $3);
    "$type* $name = ($type*)emu::dynamic_shared();"
}gse;

print "#line 1 \"$path\"\n", $src;
