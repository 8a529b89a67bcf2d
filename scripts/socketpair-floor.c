// The floor of a one-byte round trip over a socketpair with a forked child, in C (BENCHMARKS.md cites it):
//   gcc -O2 -o /tmp/pp scripts/socketpair-floor.c && /tmp/pp 1   # spinning (MSG_DONTWAIT loops); /tmp/pp 0: blocking
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>
#include <sys/wait.h>
#include <errno.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
static void rd(int fd,int spin){char b;for(;;){ssize_t n=recv(fd,&b,1,spin?MSG_DONTWAIT:0);if(n==1)return;if(n<0&&(errno==EAGAIN||errno==EINTR))continue;exit(1);}}
int main(int argc,char**argv){int spin=atoi(argv[1]);int n=200000;int sv[2];socketpair(AF_UNIX,SOCK_STREAM,0,sv);
pid_t p=fork();if(p==0){close(sv[0]);char b=1;for(int i=0;i<n+1000;i++){rd(sv[1],spin);send(sv[1],&b,1,0);}_exit(0);}
close(sv[1]);char b=1;for(int i=0;i<1000;i++){send(sv[0],&b,1,0);rd(sv[0],spin);}
double t=now();for(int i=0;i<n;i++){send(sv[0],&b,1,0);rd(sv[0],spin);}double e=now()-t;
printf("%s: %.2f us per round trip\n",spin?"spinning":"blocking",e/n*1e6);waitpid(p,0,0);return 0;}
