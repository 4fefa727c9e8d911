/*
 * filemic: an ALSA external (ioplug) capture PCM that plays a recording back as if
 * it were a microphone, at real-time pace, with no sound card and no kernel module.
 *
 * Part of emotion-edge's tests; licensed like the rest of the project (MIT OR
 * Apache-2.0). It exists because CI machines have no sound card and cannot load
 * snd-aloop or snd-dummy (no kernel modules in a container), and alsa-lib's own
 * `file` plugin is no substitute: over the `null` PCM it is not paced (seconds of
 * "audio" arrive in no time, and the reader spins), it reads a WAV's header as
 * samples, and it hands the file's bytes over in whatever format the application
 * asked for. emotion-edge/tests/alsa_mic.rs compiles this file, writes an
 * asound.conf naming it, and runs `emotion-edge devices` and `emotion-edge listen
 * --source mic:cimic` with ALSA_CONFIG_PATH pointing at that file (docs/reliability.md
 * shows how to use it by hand).
 *
 *   pcm_type.filemic { lib "/abs/path/libasound_module_pcm_filemic.so" }
 *   pcm.cimic {
 *       type filemic
 *       file "/abs/path/clip.wav"    # WAV (PCM 8/16/24/32-bit or float32) or raw
 *       # for raw files only (a WAV's header is parsed and skipped):
 *       # format S16_LE  rate 16000  channels 1
 *       eof "silence"                # silence | loop | error (EIO) | gone (ENODEV)
 *       unplug_if_missing false      # true: ENODEV, like an unplugged USB microphone,
 *                                    # once `file` no longer exists
 *       # exclusive "/abs/path/lock"  # one open at a time (EBUSY otherwise), like a
 *                                    # card's hw: PCM; the lock is held until close
 *       # period_frames 512          # pin the period (default: alsa-lib picks)
 *       hint { show on description "CI file-backed microphone" }
 *   }
 *
 * The PCM offers exactly one sample format, rate and channel count (the file's) and
 * RW interleaved access only, so an application opening its default configuration
 * gets the file's bytes unchanged. The hardware pointer follows CLOCK_MONOTONIC from
 * start. The poll descriptor is a timerfd, readable when avail_min frames have
 * "arrived" or at each period boundary (like a card's period interrupt). A reader
 * more than one buffer behind gets an overrun (-EPIPE), like a real card; the file
 * position is not skipped (time is lost, not data). FILEMIC_DEBUG=1 in the
 * environment logs transfers to stderr.
 *
 * Build: cc -shared -fPIC -DPIC -O2 -Wall -o libasound_module_pcm_filemic.so \
 *            pcm_filemic.c $(pkg-config --cflags --libs alsa)
 * (without -DPIC alsa-lib fails to load it: "undefined symbol: snd_dlsym_start").
 */
#include <alsa/asoundlib.h>
#include <alsa/pcm_external.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* The limits emotion-edge's front-end accepts, and a sane period. */
#define MAX_RATE 768000
#define MAX_CHANNELS 64
#define MAX_PERIOD_FRAMES (1 << 20)

static int dbg = -1;
#define DBG(...)                                                   \
	do {                                                       \
		if (dbg < 0)                                       \
			dbg = getenv("FILEMIC_DEBUG") != NULL;     \
		if (dbg)                                           \
			fprintf(stderr, __VA_ARGS__);              \
	} while (0)

enum eof_mode { EOF_SILENCE, EOF_LOOP, EOF_ERROR, EOF_GONE };

typedef struct {
	snd_pcm_ioplug_t io;
	char *path;
	int fd;
	int lock_fd;            /* `exclusive`: the locked file, -1 without */
	off_t data_start;       /* byte offset of the first sample */
	off_t data_end;         /* byte offset after the last whole frame */
	off_t pos;              /* current byte offset */
	snd_pcm_format_t format;
	unsigned int rate, channels;
	enum eof_mode eof;
	int unplug_if_missing;
	struct timespec t0;     /* CLOCK_MONOTONIC at start */
	int running;
	snd_pcm_uframes_t avail_min;
	snd_pcm_uframes_t boundary;
} filemic_t;

static uint64_t ns_since(const struct timespec *t0)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - t0->tv_sec) * 1000000000ull + now.tv_nsec - t0->tv_nsec;
}

/* Frames the "hardware" has captured since start. */
static uint64_t elapsed_frames(const filemic_t *f)
{
	if (!f->running)
		return 0;
	return (uint64_t)((unsigned __int128)ns_since(&f->t0) * f->rate / 1000000000u);
}

/* Arms the timerfd for the moment `frames` frames (since start) exist; disarms it
 * when stopped. A moment in the past fires at once. */
static void arm_for(filemic_t *f, uint64_t frames)
{
	struct itimerspec its;
	memset(&its, 0, sizeof(its));
	if (f->running) {
		uint64_t ns = (uint64_t)(((unsigned __int128)frames * 1000000000u + f->rate - 1) / f->rate);
		struct timespec t = f->t0;
		t.tv_sec += ns / 1000000000u;
		t.tv_nsec += ns % 1000000000u;
		if (t.tv_nsec >= 1000000000) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000;
		}
		if (t.tv_sec == 0 && t.tv_nsec == 0)
			t.tv_nsec = 1; /* all zero would disarm */
		its.it_value = t;
	}
	timerfd_settime(f->io.poll_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static int gone(const filemic_t *f)
{
	struct stat st;
	return f->unplug_if_missing && stat(f->path, &st) < 0 && errno == ENOENT;
}

/* Next wake-up: the earlier of the next period boundary of the "hardware" clock (what
 * a sound card's period interrupt would be) and the moment `appl` has avail_min frames
 * waiting. The period boundaries matter when a plugin above (plug -> mmap_emul) drains
 * whatever is available on every avail_update, so that our own avail rarely reaches
 * avail_min although the reader on top has a full period waiting: without them such a
 * chain wakes up late and overruns. */
static void arm_next(filemic_t *f, const snd_pcm_ioplug_t *io, uint64_t appl)
{
	uint64_t hw = elapsed_frames(f);
	uint64_t p = io->period_size ? io->period_size : 1;
	uint64_t boundary = (hw / p + 1) * p;
	uint64_t want = appl + f->avail_min;
	arm_for(f, want < boundary ? want : boundary);
}

static int filemic_start(snd_pcm_ioplug_t *io)
{
	filemic_t *f = io->private_data;
	clock_gettime(CLOCK_MONOTONIC, &f->t0);
	f->running = 1;
	arm_next(f, io, io->appl_ptr);
	return 0;
}

static int filemic_stop(snd_pcm_ioplug_t *io)
{
	filemic_t *f = io->private_data;
	f->running = 0;
	arm_for(f, 0);
	return 0;
}

static snd_pcm_sframes_t filemic_pointer(snd_pcm_ioplug_t *io)
{
	filemic_t *f = io->private_data;
	uint64_t hw = elapsed_frames(f);
	/* overrun: more than one buffer captured and not read */
	if (hw > (uint64_t)io->appl_ptr + io->buffer_size) {
		DBG("filemic: overrun hw %lu appl %lu buffer %lu\n", (unsigned long)hw,
		    (unsigned long)io->appl_ptr, (unsigned long)io->buffer_size);
		return -EPIPE;
	}
	return (snd_pcm_sframes_t)(f->boundary ? hw % f->boundary : hw);
}

/* Reads up to `bytes` from the data range; returns the bytes read (fewer at the end
 * of the data) or -errno. */
static ssize_t read_data(filemic_t *f, char *buf, size_t bytes)
{
	size_t done = 0;
	while (done < bytes && f->pos < f->data_end) {
		size_t want = bytes - done;
		if ((off_t)want > f->data_end - f->pos)
			want = (size_t)(f->data_end - f->pos);
		ssize_t n = pread(f->fd, buf + done, want, f->pos);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) /* the file shrank under us: that is its end now */
			break;
		done += (size_t)n;
		f->pos += n;
	}
	return (ssize_t)done;
}

static snd_pcm_sframes_t filemic_transfer(snd_pcm_ioplug_t *io,
					  const snd_pcm_channel_area_t *areas,
					  snd_pcm_uframes_t offset,
					  snd_pcm_uframes_t size)
{
	filemic_t *f = io->private_data;
	/* RW_INTERLEAVED only: one area, channel 0 at its start */
	char *buf = (char *)areas[0].addr + (areas[0].first + offset * areas[0].step) / 8;
	size_t fbytes = (size_t)snd_pcm_frames_to_bytes(io->pcm, 1);
	size_t want = size * fbytes, got = 0;

	/* A vanished file (unplug_if_missing) or eof "gone" reads like an unplugged USB
	 * microphone: -ENODEV from snd_pcm_readi (cpal: DeviceNotAvailable). A negative
	 * pointer() would only read as an overrun (-EPIPE). */
	if (gone(f)) {
		snd_pcm_ioplug_set_state(io, SND_PCM_STATE_DISCONNECTED);
		return -ENODEV;
	}
	while (got < want) {
		ssize_t n = read_data(f, buf + got, want - got);
		if (n < 0)
			return n;
		got += (size_t)n;
		if (got == want)
			break;
		/* the end of the data */
		if (f->eof == EOF_LOOP && f->data_end > f->data_start) {
			f->pos = f->data_start;
			continue;
		}
		if (f->eof == EOF_ERROR && got == 0)
			return -EIO;
		if (f->eof == EOF_GONE && got == 0) {
			snd_pcm_ioplug_set_state(io, SND_PCM_STATE_DISCONNECTED);
			return -ENODEV;
		}
		/* silence after the last whole frame (the next transfer errs, for error/gone) */
		got -= got % fbytes;
		snd_pcm_areas_silence(areas, offset + got / fbytes, io->channels,
				      size - got / fbytes, io->format);
		break;
	}
	DBG("filemic: transfer %lu frames at appl %lu, hw %lu\n", (unsigned long)size,
	    (unsigned long)io->appl_ptr, (unsigned long)elapsed_frames(f));
	/* next wake-up: when avail_min more frames exist after this read */
	arm_next(f, io, io->appl_ptr + size);
	return (snd_pcm_sframes_t)size;
}

static int filemic_poll_revents(snd_pcm_ioplug_t *io, struct pollfd *pfd,
				unsigned int nfds, unsigned short *revents)
{
	filemic_t *f = io->private_data;
	uint64_t ticks = 0;
	(void)nfds;
	if (read(io->poll_fd, &ticks, sizeof(ticks)) < 0)
		ticks = 0; /* EAGAIN: the timer had not fired */
	*revents = 0;
	if (!f->running) {
		*revents = pfd[0].revents & (POLLERR | POLLNVAL);
		return 0;
	}
	uint64_t hw = elapsed_frames(f);
	uint64_t avail = hw > io->appl_ptr ? hw - io->appl_ptr : 0;
	if (avail >= f->avail_min) {
		*revents = POLLIN;
		arm_for(f, io->appl_ptr); /* in the past: stays readable until read */
	} else {
		if (ticks && avail > 0)
			*revents = POLLIN; /* period boundary, like a card's interrupt */
		arm_next(f, io, io->appl_ptr);
	}
	return 0;
}

static int filemic_sw_params(snd_pcm_ioplug_t *io, snd_pcm_sw_params_t *params)
{
	filemic_t *f = io->private_data;
	snd_pcm_uframes_t am = 0;
	snd_pcm_sw_params_get_avail_min(params, &am);
	f->avail_min = am ? am : 1;
	snd_pcm_sw_params_get_boundary(params, &f->boundary);
	DBG("filemic: sw_params avail_min %lu period %lu buffer %lu\n", (unsigned long)f->avail_min,
	    (unsigned long)io->period_size, (unsigned long)io->buffer_size);
	return 0;
}

static int filemic_hw_params(snd_pcm_ioplug_t *io, snd_pcm_hw_params_t *params)
{
	filemic_t *f = io->private_data;
	(void)params;
	f->avail_min = io->period_size ? io->period_size : 1;
	return 0;
}

static int filemic_delay(snd_pcm_ioplug_t *io, snd_pcm_sframes_t *delayp)
{
	filemic_t *f = io->private_data;
	uint64_t hw = elapsed_frames(f);
	*delayp = hw > io->appl_ptr ? (snd_pcm_sframes_t)(hw - io->appl_ptr) : 0;
	return 0;
}

/* Frees `f` and what it holds (not the ioplug). */
static void filemic_free(filemic_t *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->lock_fd >= 0)
		close(f->lock_fd); /* releases the lock */
	free(f->path);
	free(f);
}

static int filemic_close(snd_pcm_ioplug_t *io)
{
	filemic_t *f = io->private_data;
	if (io->poll_fd >= 0)
		close(io->poll_fd);
	filemic_free(f);
	return 0;
}

static const snd_pcm_ioplug_callback_t filemic_callback = {
	.start = filemic_start,
	.stop = filemic_stop,
	.pointer = filemic_pointer,
	.transfer = filemic_transfer,
	.close = filemic_close,
	.hw_params = filemic_hw_params,
	.sw_params = filemic_sw_params,
	.poll_revents = filemic_poll_revents,
	.delay = filemic_delay,
};

static uint32_t le32(const unsigned char *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* If the file is RIFF/WAVE: takes format, rate and channels from "fmt " and the sample
 * range from "data". Returns 1 if WAV, 0 if not, -EINVAL (with a message) on a bad WAV. */
static int parse_wav(filemic_t *f)
{
	unsigned char h[12], c[8], fmt[40];
	int have_fmt = 0;
	off_t off = 12;
	if (pread(f->fd, h, 12, 0) != 12 || memcmp(h, "RIFF", 4) || memcmp(h + 8, "WAVE", 4))
		return 0;
	for (;;) {
		if (pread(f->fd, c, 8, off) != 8) {
			SNDERR("filemic: %s: a WAV without a data chunk", f->path);
			return -EINVAL;
		}
		uint32_t len = le32(c + 4);
		if (!memcmp(c, "fmt ", 4)) {
			size_t n = len < sizeof(fmt) ? len : sizeof(fmt);
			if (n < 16 || pread(f->fd, fmt, n, off + 8) != (ssize_t)n) {
				SNDERR("filemic: %s: a WAV with a short fmt chunk", f->path);
				return -EINVAL;
			}
			unsigned tag = le16(fmt), ch = le16(fmt + 2), bits = le16(fmt + 14);
			if (tag == 0xfffe && n >= 26)
				tag = le16(fmt + 24); /* WAVE_FORMAT_EXTENSIBLE's subformat */
			f->channels = ch;
			f->rate = le32(fmt + 4);
			if (tag == 1 && bits == 8)
				f->format = SND_PCM_FORMAT_U8;
			else if (tag == 1 && bits == 16)
				f->format = SND_PCM_FORMAT_S16_LE;
			else if (tag == 1 && bits == 24)
				f->format = SND_PCM_FORMAT_S24_3LE;
			else if (tag == 1 && bits == 32)
				f->format = SND_PCM_FORMAT_S32_LE;
			else if (tag == 3 && bits == 32)
				f->format = SND_PCM_FORMAT_FLOAT_LE;
			else {
				SNDERR("filemic: %s: unsupported WAV format (tag %u, %u bits)", f->path, tag, bits);
				return -EINVAL;
			}
			have_fmt = 1;
		} else if (!memcmp(c, "data", 4)) {
			if (!have_fmt) {
				SNDERR("filemic: %s: a WAV with its data before fmt", f->path);
				return -EINVAL;
			}
			f->data_start = off + 8;
			/* 0 and ~0: a streaming writer's "until the end" */
			f->data_end = (len == 0 || len == 0xffffffffu) ? -1 : f->data_start + (off_t)len;
			return 1;
		}
		off += 8 + (off_t)len + (len & 1);
	}
}

SND_PCM_PLUGIN_DEFINE_FUNC(filemic)
{
	snd_config_iterator_t i, next;
	const char *path = NULL, *eof = "silence", *lock = NULL;
	const char *fmtname = "S16_LE";
	long rate = 16000, channels = 1, period_frames = 0;
	int unplug = 0, err;
	filemic_t *f;
	struct stat st;

	(void)root;
	if (stream != SND_PCM_STREAM_CAPTURE) {
		SNDERR("filemic: %s is capture only", name);
		return -EINVAL;
	}
	snd_config_for_each(i, next, conf) {
		snd_config_t *n = snd_config_iterator_entry(i);
		const char *id;
		if (snd_config_get_id(n, &id) < 0)
			continue;
		if (!strcmp(id, "comment") || !strcmp(id, "type") || !strcmp(id, "hint"))
			continue;
		if (!strcmp(id, "file")) {
			if (snd_config_get_string(n, &path) < 0)
				goto bad;
		} else if (!strcmp(id, "format")) {
			if (snd_config_get_string(n, &fmtname) < 0)
				goto bad;
		} else if (!strcmp(id, "eof")) {
			if (snd_config_get_string(n, &eof) < 0)
				goto bad;
		} else if (!strcmp(id, "exclusive")) {
			if (snd_config_get_string(n, &lock) < 0)
				goto bad;
		} else if (!strcmp(id, "rate")) {
			if (snd_config_get_integer(n, &rate) < 0)
				goto bad;
		} else if (!strcmp(id, "channels")) {
			if (snd_config_get_integer(n, &channels) < 0)
				goto bad;
		} else if (!strcmp(id, "period_frames")) {
			if (snd_config_get_integer(n, &period_frames) < 0 || period_frames < 0 ||
			    period_frames > MAX_PERIOD_FRAMES)
				goto bad;
		} else if (!strcmp(id, "unplug_if_missing")) {
			if ((err = snd_config_get_bool(n)) < 0)
				goto bad;
			unplug = err;
		} else {
			SNDERR("filemic: unknown field %s", id);
			return -EINVAL;
		}
		continue;
	bad:
		SNDERR("filemic: invalid value for %s", id);
		return -EINVAL;
	}
	if (!path) {
		SNDERR("filemic: no file given");
		return -EINVAL;
	}
	if (rate <= 0 || rate > MAX_RATE || channels <= 0 || channels > MAX_CHANNELS) {
		SNDERR("filemic: rate must be 1..%d and channels 1..%d", MAX_RATE, MAX_CHANNELS);
		return -EINVAL;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->fd = -1;
	f->lock_fd = -1;
	f->io.poll_fd = -1;
	f->path = strdup(path);
	if (!f->path) {
		err = -ENOMEM;
		goto fail;
	}
	if (!strcmp(eof, "silence"))
		f->eof = EOF_SILENCE;
	else if (!strcmp(eof, "loop"))
		f->eof = EOF_LOOP;
	else if (!strcmp(eof, "error"))
		f->eof = EOF_ERROR;
	else if (!strcmp(eof, "gone"))
		f->eof = EOF_GONE;
	else {
		SNDERR("filemic: eof must be silence, loop, error or gone, not %s", eof);
		err = -EINVAL;
		goto fail;
	}
	f->unplug_if_missing = unplug;
	if (lock) {
		f->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (f->lock_fd < 0) {
			err = -errno;
			SNDERR("filemic: cannot open the lock file %s: %s", lock, strerror(errno));
			goto fail;
		}
		if (flock(f->lock_fd, LOCK_EX | LOCK_NB) < 0) {
			err = errno == EWOULDBLOCK ? -EBUSY : -errno;
			SNDERR("filemic: %s is open elsewhere (exclusive)", name);
			goto fail;
		}
	}
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0) {
		err = -errno;
		SNDERR("filemic: cannot open %s: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		SNDERR("filemic: %s is not a regular file", path);
		err = -EINVAL;
		goto fail;
	}
	f->format = snd_pcm_format_value(fmtname);
	f->rate = (unsigned int)rate;
	f->channels = (unsigned int)channels;
	f->data_start = 0;
	f->data_end = -1;
	err = parse_wav(f);
	if (err < 0)
		goto fail;
	if (f->format == SND_PCM_FORMAT_UNKNOWN || f->rate == 0 || f->rate > MAX_RATE ||
	    f->channels == 0 || f->channels > MAX_CHANNELS) {
		SNDERR("filemic: %s: format %s, %u Hz, %u channels is not a capture format filemic offers",
		       path, snd_pcm_format_name(f->format) ? snd_pcm_format_name(f->format) : "?",
		       f->rate, f->channels);
		err = -EINVAL;
		goto fail;
	}
	{
		/* The data ends at the file's end (a WAV cut short, or raw), after the last
		 * whole frame. */
		off_t fbytes = snd_pcm_format_physical_width(f->format) / 8 * (off_t)f->channels;
		if (f->data_end < 0 || f->data_end > st.st_size)
			f->data_end = st.st_size;
		if (f->data_end < f->data_start)
			f->data_end = f->data_start;
		f->data_end -= (f->data_end - f->data_start) % fbytes;
		f->pos = f->data_start;
	}

	f->io.version = SND_PCM_IOPLUG_VERSION;
	f->io.name = "filemic: file-backed capture";
	f->io.flags = SND_PCM_IOPLUG_FLAG_BOUNDARY_WA | SND_PCM_IOPLUG_FLAG_MONOTONIC;
	f->io.callback = &filemic_callback;
	f->io.private_data = f;
	f->io.mmap_rw = 0;
	f->io.poll_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	f->io.poll_events = POLLIN;
	if (f->io.poll_fd < 0) {
		err = -errno;
		goto fail;
	}
	err = snd_pcm_ioplug_create(&f->io, name, stream, mode);
	if (err < 0) {
		close(f->io.poll_fd);
		goto fail;
	}
	/* From here on snd_pcm_ioplug_delete frees `f` through filemic_close. */
	{
		unsigned int access = SND_PCM_ACCESS_RW_INTERLEAVED;
		unsigned int format = (unsigned int)f->format;
		unsigned int fbytes = (unsigned int)snd_pcm_format_physical_width(f->format) / 8 * f->channels;
		unsigned int pmin = period_frames > 0 ? (unsigned int)period_frames * fbytes : 16 * fbytes;
		unsigned int pmax = period_frames > 0 ? (unsigned int)period_frames * fbytes : 1u << 20;
		if (pmax < pmin)
			pmax = pmin;
		if ((err = snd_pcm_ioplug_set_param_list(&f->io, SND_PCM_IOPLUG_HW_ACCESS, 1, &access)) < 0 ||
		    (err = snd_pcm_ioplug_set_param_list(&f->io, SND_PCM_IOPLUG_HW_FORMAT, 1, &format)) < 0 ||
		    (err = snd_pcm_ioplug_set_param_minmax(&f->io, SND_PCM_IOPLUG_HW_CHANNELS, f->channels, f->channels)) < 0 ||
		    (err = snd_pcm_ioplug_set_param_minmax(&f->io, SND_PCM_IOPLUG_HW_RATE, f->rate, f->rate)) < 0 ||
		    (err = snd_pcm_ioplug_set_param_minmax(&f->io, SND_PCM_IOPLUG_HW_PERIOD_BYTES, pmin, pmax)) < 0 ||
		    (err = snd_pcm_ioplug_set_param_minmax(&f->io, SND_PCM_IOPLUG_HW_BUFFER_BYTES, 2 * pmin,
							   pmax * 4 > (4u << 20) ? pmax * 4 : (4u << 20))) < 0 ||
		    (err = snd_pcm_ioplug_set_param_minmax(&f->io, SND_PCM_IOPLUG_HW_PERIODS, 2, 1024)) < 0) {
			snd_pcm_ioplug_delete(&f->io);
			return err;
		}
	}
	*pcmp = f->io.pcm;
	return 0;
fail:
	filemic_free(f);
	return err;
}

SND_PCM_PLUGIN_SYMBOL(filemic);
