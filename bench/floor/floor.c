/* roomcast-floor: the floor a room chat server is measured against. A raw epoll writer, C, one thread:
 * it accepts TCP, answers the WebSocket upgrade (101 with the right Sec-WebSocket-Accept, nothing else
 * checked), and speaks just enough of roomcast's JSON for roomcast-bench to drive it: `join` answers
 * `joined`; `chat` is framed once and the same bytes are queued to every member of the room, `ack` to a
 * sender that gave a `ref`; a ping gets its pong. No JSON parser, no validation, no history, no Redis.
 * Rule: output is batched exactly as roomcast batches it: queued during one epoll_wait turn, then one
 * write() per connection at the end of the turn (EPOLLOUT only while the kernel refuses bytes).
 *
 *   roomcast-floor --port P [--host 127.0.0.1] [--ping-interval S]
 *
 * Loopback only (binds 127.0.0.1 unless --host names another 127.x address). SIGTERM/SIGINT: exit 0. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

typedef struct Buf {
  char* p;     /* bytes */
  size_t len;  /* used */
  size_t cap;  /* allocated */
} Buf;

typedef struct Room Room;

typedef struct Conn {
  int fd;
  int ws;             /* 0: reading the HTTP head; 1: WebSocket */
  int dirty;          /* in the dirty list of this turn */
  int want_out;       /* EPOLLOUT armed */
  Buf in, out;        /* unparsed input; queued output */
  Room** rooms;       /* rooms joined */
  int nrooms, caprooms;
  struct Conn* next_dirty;
} Conn;

struct Room {
  char* id;       /* room id, NUL-terminated */
  Conn** m;       /* members */
  int n, cap;
  uint64_t seq;   /* chat ids */
};

static volatile sig_atomic_t g_stop = 0;
static int g_ep = -1;
static Conn* g_dirty = NULL;
static Room** g_rooms = NULL; /* open addressing by FNV-1a of the id */
static size_t g_rooms_cap = 0, g_rooms_n = 0;
static Conn** g_all = NULL;   /* every WebSocket (server pings) */
static size_t g_all_n = 0, g_all_cap = 0;

static void die(const char* what) {
  perror(what);
  exit(2);
}

static void buf_reserve(Buf* b, size_t extra) {
  if (b->len + extra <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra) cap *= 2;
  b->p = realloc(b->p, cap);
  if (!b->p) die("realloc");
  b->cap = cap;
}

static void buf_add(Buf* b, const void* p, size_t n) {
  buf_reserve(b, n);
  memcpy(b->p + b->len, p, n);
  b->len += n;
}

static void buf_free(Buf* b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

static void mark_dirty(Conn* c) {
  if (c->dirty) return;
  c->dirty = 1;
  c->next_dirty = g_dirty;
  g_dirty = c;
}

/* Appends an unmasked server frame header for a payload of n bytes. */
static size_t frame_header(uint8_t* h, uint8_t opcode, size_t n) {
  h[0] = (uint8_t)(0x80 | opcode);
  if (n < 126) {
    h[1] = (uint8_t)n;
    return 2;
  }
  if (n <= 0xffff) {
    h[1] = 126;
    h[2] = (uint8_t)(n >> 8);
    h[3] = (uint8_t)n;
    return 4;
  }
  h[1] = 127;
  for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
  return 10;
}

static void queue_frame(Conn* c, uint8_t opcode, const char* p, size_t n) {
  uint8_t h[10];
  size_t hl = frame_header(h, opcode, n);
  buf_add(&c->out, h, hl);
  buf_add(&c->out, p, n);
  mark_dirty(c);
}

static uint64_t fnv(const char* s, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ULL;
  return h;
}

static Room* room_get(const char* id, size_t n, int create) {
  if (g_rooms_cap == 0 || (create && (g_rooms_n + 1) * 2 > g_rooms_cap)) {
    size_t cap = g_rooms_cap ? g_rooms_cap * 2 : 1024;
    Room** t = calloc(cap, sizeof(Room*));
    if (!t) die("calloc");
    for (size_t i = 0; i < g_rooms_cap; i++) {
      Room* r = g_rooms[i];
      if (!r) continue;
      size_t j = fnv(r->id, strlen(r->id)) & (cap - 1);
      while (t[j]) j = (j + 1) & (cap - 1);
      t[j] = r;
    }
    free(g_rooms);
    g_rooms = t;
    g_rooms_cap = cap;
  }
  size_t j = fnv(id, n) & (g_rooms_cap - 1);
  while (g_rooms[j]) {
    if (strlen(g_rooms[j]->id) == n && memcmp(g_rooms[j]->id, id, n) == 0) return g_rooms[j];
    j = (j + 1) & (g_rooms_cap - 1);
  }
  if (!create) return NULL;
  Room* r = calloc(1, sizeof(Room));
  r->id = strndup(id, n);
  g_rooms[j] = r;
  g_rooms_n++;
  return r;
}

/* The string value of "key":"..." in s[0..n) (no escapes in the values read here). */
static const char* str_field(const char* s, size_t n, const char* key, size_t* out_len) {
  char needle[32];
  int k = snprintf(needle, sizeof needle, "\"%s\":\"", key);
  const char* p = memmem(s, n, needle, (size_t)k);
  if (!p) return NULL;
  p += k;
  const char* end = s + n;
  const char* q = p;
  while (q < end && *q != '"') q += (*q == '\\' && q + 1 < end) ? 2 : 1;
  if (q >= end) return NULL;
  *out_len = (size_t)(q - p);
  return p;
}

/* The numeric "ref" of a client message, or -1. */
static long long ref_field(const char* s, size_t n) {
  const char* p = memmem(s, n, "\"ref\":", 6);
  if (!p) return -1;
  p += 6;
  long long v = 0;
  int any = 0;
  while (p < s + n && *p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0'), any = 1;
  return any ? v : -1;
}

static void on_text(Conn* c, const char* s, size_t n) {
  size_t rl = 0;
  const char* rid = str_field(s, n, "roomId", &rl);
  if (memmem(s, n, "\"type\":\"join\"", 13) && rid) {
    Room* r = room_get(rid, rl, 1);
    int already = 0;
    for (int i = 0; i < c->nrooms; i++) already |= c->rooms[i] == r;
    if (!already) {
      if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->m = realloc(r->m, (size_t)r->cap * sizeof(Conn*));
      }
      r->m[r->n++] = c;
      if (c->nrooms == c->caprooms) {
        c->caprooms = c->caprooms ? c->caprooms * 2 : 2;
        c->rooms = realloc(c->rooms, (size_t)c->caprooms * sizeof(Room*));
      }
      c->rooms[c->nrooms++] = r;
    }
    char reply[200];
    int k = snprintf(reply, sizeof reply, "{\"type\":\"joined\",\"roomId\":\"%.*s\",\"count\":%d,\"members\":[],\"history\":[]}",
                     (int)rl, rid, r->n);
    queue_frame(c, 0x1, reply, (size_t)k);
    return;
  }
  if (memmem(s, n, "\"type\":\"chat\"", 13) && rid) {
    size_t ml = 0;
    const char* msg = str_field(s, n, "message", &ml);
    if (!msg) return;
    Room* r = room_get(rid, rl, 0);
    uint64_t id = r ? ++r->seq : 0;
    long long ref = ref_field(s, n);
    if (r && r->n > 0) {
      /* The event, framed once: the same bytes go to every member. */
      static Buf ev;
      ev.len = 0;
      char head[256];
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      int k = snprintf(head, sizeof head, "{\"type\":\"chat\",\"roomId\":\"%.*s\",\"id\":\"%llu\",\"ts\":%lld,\"user\":{\"id\":\"u\",\"name\":\"u\"},\"message\":\"",
                       (int)rl, rid, (unsigned long long)id, (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
      size_t plen = (size_t)k + ml + 2;
      uint8_t h[10];
      size_t hl = frame_header(h, 0x1, plen);
      buf_add(&ev, h, hl);
      buf_add(&ev, head, (size_t)k);
      buf_add(&ev, msg, ml);
      buf_add(&ev, "\"}", 2);
      for (int i = 0; i < r->n; i++) {
        buf_add(&r->m[i]->out, ev.p, ev.len);
        mark_dirty(r->m[i]);
      }
    }
    if (ref >= 0) {
      char ack[96];
      int k = snprintf(ack, sizeof ack, "{\"type\":\"ack\",\"ref\":%lld,\"id\":\"%llu\"}", ref, (unsigned long long)id);
      queue_frame(c, 0x1, ack, (size_t)k);
    }
    return;
  }
  if (memmem(s, n, "\"type\":\"ping\"", 13)) queue_frame(c, 0x1, "{\"type\":\"pong\"}", 15);
}

static void conn_close(Conn* c) {
  for (int i = 0; i < c->nrooms; i++) {
    Room* r = c->rooms[i];
    for (int j = 0; j < r->n; j++)
      if (r->m[j] == c) {
        r->m[j] = r->m[--r->n];
        break;
      }
  }
  for (size_t i = 0; c->ws && i < g_all_n; i++)
    if (g_all[i] == c) {
      g_all[i] = g_all[--g_all_n];
      break;
    }
  free(c->rooms);
  buf_free(&c->in);
  buf_free(&c->out);
  close(c->fd);
  c->fd = -1; /* freed after the turn (it may be in the dirty list) */
}

static const char* kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* Handles a complete HTTP head; returns 0, or -1 to close. */
static int on_head(Conn* c, size_t head_len) {
  const char* h = c->in.p;
  const char* key = NULL;
  size_t key_len = 0;
  for (const char* line = memmem(h, head_len, "\r\n", 2); line && line < h + head_len; line = memmem(line + 2, (size_t)(h + head_len - line - 2), "\r\n", 2)) {
    const char* l = line + 2;
    if ((size_t)(h + head_len - l) > 18 && strncasecmp(l, "Sec-WebSocket-Key:", 18) == 0) {
      key = l + 18;
      while (*key == ' ') key++;
      const char* e = memmem(key, (size_t)(h + head_len - key), "\r\n", 2);
      key_len = e ? (size_t)(e - key) : 0;
      break;
    }
  }
  if (!key || key_len == 0 || key_len > 64) {
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    (void)!write(c->fd, ok, sizeof ok - 1);
    return -1;
  }
  char cat[128];
  memcpy(cat, key, key_len);
  memcpy(cat + key_len, kGuid, 36);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_Digest(cat, key_len + 36, md, &md_len, EVP_sha1(), NULL);
  char acc[64];
  int al = EVP_EncodeBlock((unsigned char*)acc, md, (int)md_len);
  char resp[256];
  int k = snprintf(resp, sizeof resp,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %.*s\r\n\r\n",
                   al, acc);
  buf_add(&c->out, resp, (size_t)k);
  mark_dirty(c);
  c->ws = 1;
  if (g_all_n == g_all_cap) {
    g_all_cap = g_all_cap ? g_all_cap * 2 : 1024;
    g_all = realloc(g_all, g_all_cap * sizeof(Conn*));
  }
  g_all[g_all_n++] = c;
  return 0;
}

/* Parses what is in c->in; returns -1 to close. */
static int on_input(Conn* c) {
  size_t pos = 0;
  if (!c->ws) {
    char* e = memmem(c->in.p, c->in.len, "\r\n\r\n", 4);
    if (!e) return c->in.len > 16384 ? -1 : 0;
    pos = (size_t)(e - c->in.p) + 4;
    if (on_head(c, pos - 2) < 0) return -1;
  }
  while (c->in.len - pos >= 2) {
    uint8_t* p = (uint8_t*)c->in.p + pos;
    size_t avail = c->in.len - pos;
    uint8_t op = p[0] & 0x0f;
    if (!(p[1] & 0x80)) return -1; /* client frames are masked */
    uint64_t n = p[1] & 0x7f;
    size_t hl = 2;
    if (n == 126) {
      if (avail < 4) break;
      n = ((uint64_t)p[2] << 8) | p[3];
      hl = 4;
    } else if (n == 127) {
      if (avail < 10) break;
      n = 0;
      for (int i = 0; i < 8; i++) n = (n << 8) | p[2 + i];
      hl = 10;
    }
    if (n > (64u << 20)) return -1;
    if (avail < hl + 4 + n) break;
    uint8_t* mask = p + hl;
    char* pl = (char*)p + hl + 4;
    for (uint64_t i = 0; i < n; i++) pl[i] ^= (char)mask[i & 3];
    pos += hl + 4 + n;
    if (op == 0x1) on_text(c, pl, (size_t)n);
    else if (op == 0x9) queue_frame(c, 0xA, pl, (size_t)n);
    else if (op == 0x8) return -1;
  }
  if (pos) {
    memmove(c->in.p, c->in.p + pos, c->in.len - pos);
    c->in.len -= pos;
  }
  return 0;
}

static void set_out(Conn* c, int on) {
  if (c->want_out == on) return;
  c->want_out = on;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* One write() of everything queued; returns -1 when the connection broke. */
static int flush(Conn* c) {
  if (c->out.len == 0) return 0;
  ssize_t w = write(c->fd, c->out.p, c->out.len);
  if (w < 0) {
    if (errno == EAGAIN) w = 0;
    else return -1;
  }
  if ((size_t)w < c->out.len) memmove(c->out.p, c->out.p + w, c->out.len - (size_t)w);
  c->out.len -= (size_t)w;
  set_out(c, c->out.len > 0);
  return 0;
}

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

int main(int argc, char** argv) {
  const char* host = "127.0.0.1";
  int port = 0;
  double ping_s = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--host")) host = argv[i + 1];
    else if (!strcmp(argv[i], "--ping-interval")) ping_s = atof(argv[i + 1]);
    else {
      fprintf(stderr, "roomcast-floor: unknown option %s\nusage: roomcast-floor --port P [--host 127.x.y.z] [--ping-interval S]\n", argv[i]);
      return 1;
    }
  }
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (port <= 0 || inet_pton(AF_INET, host, &a.sin_addr) != 1 || (ntohl(a.sin_addr.s_addr) >> 24) != 127) {
    fprintf(stderr, "roomcast-floor: needs --port and a loopback --host\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(ls, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(ls, (struct sockaddr*)&a, sizeof a) < 0) die("bind");
  if (listen(ls, 4096) < 0) die("listen");
  g_ep = epoll_create1(0);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(g_ep, EPOLL_CTL_ADD, ls, &lev);
  int tfd = -1;
  static Conn timer_tag;
  if (ping_s > 0) {
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct itimerspec its = {.it_interval = {(time_t)ping_s, (long)((ping_s - (time_t)ping_s) * 1e9)}};
    its.it_value = its.it_interval;
    timerfd_settime(tfd, 0, &its, NULL);
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = &timer_tag};
    epoll_ctl(g_ep, EPOLL_CTL_ADD, tfd, &tev);
  }
  static char rbuf[65536];
  struct epoll_event evs[512];
  Conn* dead[512];
  while (!g_stop) {
    int n = epoll_wait(g_ep, evs, 512, 1000);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    int ndead = 0;
    for (int i = 0; i < n; i++) {
      Conn* c = evs[i].data.ptr;
      if (c == NULL) {
        for (;;) {
          int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          Conn* nc = calloc(1, sizeof(Conn));
          nc->fd = fd;
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
          epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      if (c == &timer_tag) {
        uint64_t x;
        (void)!read(tfd, &x, sizeof x);
        for (size_t j = 0; j < g_all_n; j++) queue_frame(g_all[j], 0x9, "", 0);
        continue;
      }
      if (c->fd < 0) continue;
      int bad = 0;
      if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        ssize_t r = read(c->fd, rbuf, sizeof rbuf);
        if (r > 0) {
          buf_add(&c->in, rbuf, (size_t)r);
          bad = on_input(c) < 0;
        } else if (r == 0 || errno != EAGAIN) {
          bad = 1;
        }
      }
      if (!bad && (evs[i].events & EPOLLOUT)) bad = flush(c) < 0;
      if (bad) {
        conn_close(c);
        if (ndead < 512) dead[ndead++] = c;
      }
    }
    /* End of the turn: one write per connection that got something. */
    for (Conn* c = g_dirty; c;) {
      Conn* next = c->next_dirty;
      c->dirty = 0;
      if (c->fd >= 0 && flush(c) < 0) {
        conn_close(c);
        if (ndead < 512) dead[ndead++] = c;
      }
      c = next;
    }
    g_dirty = NULL;
    for (int i = 0; i < ndead; i++) free(dead[i]);
  }
  return 0;
}
