/* zipwriter.c - see zipwriter.h. */
#include "zipwriter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "xalloc.h"

static void put(struct buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void put16(struct buf *b, uint16_t v)
{
	unsigned char x[2] = {v & 0xff, v >> 8};

	put(b, x, 2);
}

static void put32(struct buf *b, uint32_t v)
{
	put16(b, v & 0xffff);
	put16(b, v >> 16);
}

static void put64(struct buf *b, uint64_t v)
{
	put32(b, (uint32_t)v);
	put32(b, (uint32_t)(v >> 32));
}

/* Raw deflate, as zip holds it.  *out is freed by the caller. */
static size_t deflate_raw(const void *data, size_t len, unsigned char **out)
{
	z_stream zs = {0};
	size_t cap;

	if (deflateInit2(&zs, 9, Z_DEFLATED, -MAX_WBITS, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	cap = deflateBound(&zs, len);
	*out = xmalloc(cap);
	zs.next_in = (unsigned char *)data;
	zs.avail_in = (uInt)len;
	zs.next_out = *out;
	zs.avail_out = (uInt)cap;
	if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
		abort();
	deflateEnd(&zs);
	return cap - zs.avail_out;
}

struct buf build_zip(const struct zentry *es, size_t n, const struct zopts *o,
			    size_t *data_off)
{
	struct buf z = {0}, cd = {0};
	uint64_t cd_off;
	bool saturate;

	for (size_t i = 0; i < n; i++) {
		const struct zentry *e = &es[i];
		size_t nlen = e->name_len ? e->name_len : strlen(e->name);
		bool dir = nlen && e->name[nlen - 1] == '/';
		uint32_t attr = e->attr ? e->attr : dir ? (040755u << 16 | 0x10) : 0100644u << 16;
		unsigned char *comp = NULL;
		size_t clen;
		uint32_t crc = (uint32_t)crc32(0, e->data, (uInt)e->len);
		uint32_t usize = e->lie ? e->declared : (uint32_t)e->len;
		uint16_t method = e->method ? e->method : e->deflate ? 8 : 0;
		uint32_t off = (uint32_t)z.len;

		if (e->deflate)
			clen = deflate_raw(e->data, e->len, &comp);
		else {
			comp = xmalloc(e->len + 1);
			memcpy(comp, e->data ? e->data : "", e->len);
			clen = e->len;
		}
		clen -= e->cut;
		if (e->bad_crc)
			crc ^= 0x5a5a5a5a;
		/* local header */
		put32(&z, 0x04034b50);
		put16(&z, 20);
		put16(&z, e->flags);
		put16(&z, method);
		put16(&z, 0);
		put16(&z, 0x21);
		put32(&z, crc);
		put32(&z, (uint32_t)(clen + e->junk));
		put32(&z, usize);
		put16(&z, (uint16_t)nlen);
		put16(&z, 0);
		put(&z, e->name, nlen);
		if (data_off)
			data_off[i] = z.len;
		put(&z, comp, clen);
		for (size_t j = 0; j < e->junk; j++)
			put(&z, "", 1);
		/* its central directory header */
		put32(&cd, 0x02014b50);
		put16(&cd, e->made_by ? e->made_by : 3 << 8 | 20);
		put16(&cd, 20);
		put16(&cd, e->flags);
		put16(&cd, method);
		put16(&cd, 0);
		put16(&cd, 0x21);
		put32(&cd, crc);
		put32(&cd, (uint32_t)(clen + e->junk));
		put32(&cd, usize);
		put16(&cd, (uint16_t)nlen);
		put16(&cd, 0);
		put16(&cd, 0);
		put16(&cd, 0);
		put16(&cd, 0);
		put32(&cd, attr);
		put32(&cd, off);
		put(&cd, e->name, nlen);
		free(comp);
	}
	cd_off = z.len;
	put(&z, cd.p, cd.len);
	if (o && o->zip64) {
		uint64_t z64_off = z.len;

		put32(&z, 0x06064b50);
		put64(&z, 44);
		put16(&z, 45);
		put16(&z, 45);
		put32(&z, 0);
		put32(&z, 0);
		put64(&z, n + o->zip64_liar);
		put64(&z, n + o->zip64_liar);
		put64(&z, cd.len);
		put64(&z, cd_off);
		put32(&z, 0x07064b50);
		put32(&z, 0);
		put64(&z, z64_off);
		put32(&z, 1);
	}
	put32(&z, 0x06054b50);
	put16(&z, 0);
	put16(&z, 0);
	saturate = o && o->zip64 && !o->zip64_plain;
	put16(&z, saturate ? 0xffff : (uint16_t)n);
	put16(&z, saturate ? 0xffff : (uint16_t)n);
	put32(&z, saturate ? 0xffffffff : (uint32_t)cd.len);
	put32(&z, saturate ? 0xffffffff : (uint32_t)cd_off);
	put16(&z, o && o->comment ? (uint16_t)o->comment_len : 0);
	if (o && o->comment)
		put(&z, o->comment, o->comment_len);
	free(cd.p);
	return z;
}


void write_zip_file(const char *path, const struct zentry *es, size_t n, const struct zopts *o)
{
	struct buf z = build_zip(es, n, o, NULL);
	FILE *f = fopen(path, "wb");

	if (!f || fwrite(z.p, 1, z.len, f) != z.len || fclose(f) != 0)
		abort();
	free(z.p);
}
