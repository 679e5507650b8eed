#!/usr/bin/perl
# spec/support/sdactivate.pl HOST PORTFILE NAME [PIDSHIFT] -- PROGRAM ARGS...
# A stand-in for systemd-socket-activate: binds a listening TCP socket on
# HOST port 0, writes the port to PORTFILE, puts the socket at fd 3 and
# execs PROGRAM with LISTEN_FDS=1, LISTEN_PID=<its pid> (plus PIDSHIFT, to
# test a LISTEN_PID meant for another process) and LISTEN_FDNAMES=NAME.
use strict;
use warnings;
use IO::Socket::INET;
use Fcntl qw(F_SETFD);
use POSIX qw(dup2);

my ($host, $portfile, $name, $shift) = splice(@ARGV, 0, 4);
shift @ARGV if @ARGV && $ARGV[0] eq '--';
my $s = IO::Socket::INET->new(LocalAddr => $host, LocalPort => 0,
                              Listen => 16, ReuseAddr => 1, Proto => 'tcp')
  or die "sdactivate: cannot listen: $!\n";
open(my $pf, '>', $portfile) or die "sdactivate: $portfile: $!\n";
print $pf $s->sockport, "\n";
close $pf;
# fd 3, inherited across exec (perl marks its own fds close-on-exec)
if (fileno($s) != 3) { dup2(fileno($s), 3) or die "sdactivate: dup2: $!\n"; }
open(my $fd3, '<&=', 3) or die "sdactivate: fd 3: $!\n";
fcntl($fd3, F_SETFD, 0) or die "sdactivate: fcntl: $!\n";
$ENV{LISTEN_FDS} = 1;
$ENV{LISTEN_PID} = $$ + ($shift || 0);                 # exec keeps the pid
$ENV{LISTEN_FDNAMES} = $name;
exec { $ARGV[0] } @ARGV or die "sdactivate: exec: $!\n";
