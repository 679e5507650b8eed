/*
** fs.h: what the file binding files (fs.c, fsdir.c, fs_poll.c) share.
** See Copyright Notice in README.md
**
** One fs call = one lh_req whose payload is an lh_fsreq. A call without a
** callback runs synchronously on the caller's thread (libuv's own rule for
** a NULL callback); with one, it runs on libuv's thread pool and the loop
** calls lh_fs_cb when it is done.
*/
#ifndef LH_FS_H
#define LH_FS_H

#include "common.h"

/* A directory stream of fs_opendir (the "uv_dir" userdata). The entries
** buffer lives in the userdata, so it never moves; a readdir request in
** flight anchors the userdata (data_ref) and marks it busy. */
typedef struct lh_fsdir {
  uv_dir_t *dir;   /* NULL once closed */
  int busy;        /* an asynchronous fs_readdir is in flight */
  size_t nentries; /* entries per readdir */
  uv_dirent_t dirents[1];
} lh_fsdir;

typedef struct lh_fsreq {
  uv_fs_t fs;        /* first: lh_req_of(&fs) finds the lh_req */
  char *buf;         /* fs_read's buffer (malloc), freed with the request */
  lh_fsdir *dir;     /* fs_readdir's stream, set busy until done */
  size_t nentries;   /* fs_opendir's entries per readdir */
} lh_fsreq;

#define lh_fsr(r) lh_req_uv(r, lh_fsreq)

/* The request of one fs call; cbidx 0: synchronous. */
lh_req *lh_fs_req(lua_State *L, int cbidx);
/* The completion callback of asynchronous calls. */
void lh_fs_cb(uv_fs_t *req);
#define lh_fs_cbfn(r) ((r)->cb_ref == LUA_NOREF ? NULL : lh_fs_cb)
/* After uv_fs_<op> returned st: synchronous -> its results or fail;
** asynchronous -> the request userdata, or fail when libuv refused. */
int lh_fs_after(lua_State *L, lh_req *r, int st);
/* uv_fs_<op>(loop, req, args..., cb) on request r, then lh_fs_after. */
#define LH_FS_CALL(L, r, op, ...) \
  lh_fs_after(L, (r), uv_fs_##op((r)->ctx->loop, &lh_fsr(r)->fs, \
                                 __VA_ARGS__, lh_fs_cbfn(r)))

/* Results of opendir and readdir (fsdir.c). */
int lh_fsdir_push_result(lua_State *L, lh_req *r);

/* luv's stat table: dev, mode, nlink, uid, gid, rdev, ino, size, blksize,
** blocks, flags, gen, atime/mtime/ctime/birthtime = {sec=, nsec=}, type. */
void lh_push_stat(lua_State *L, const uv_stat_t *s);

#endif
