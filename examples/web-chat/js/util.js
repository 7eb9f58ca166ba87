// Small helpers shared by the modules: ids, DOM building, formatting.

/** A random id (crypto.randomUUID needs a secure context; getRandomValues does not). */
export function uid() {
  if (crypto.randomUUID && window.isSecureContext) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Build an element: el('li', { class: 'x', dataset: { seq: 3 }, onclick }, child, 'text', …).
 * Text is always set as text (never HTML), so message bodies cannot inject markup.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'dataset') {
      for (const [k, v] of Object.entries(value)) if (v !== undefined && v !== null) node.dataset[k] = String(v);
    }
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== 'string') node[key] = value;
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const TIME = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const DAY = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'short' });

export function formatTime(ms) {
  return Number.isFinite(ms) && ms > 0 ? TIME.format(new Date(ms)) : '';
}

export function formatDay(ms) {
  return Number.isFinite(ms) && ms > 0 ? DAY.format(new Date(ms)) : '';
}

export function formatSize(bytes) {
  const n = Number(bytes);
  if (!Number.isFinite(n) || n < 0) return '';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** Only http(s) links are shown as links or previews (no javascript:, data: …). */
export function safeUrl(value) {
  try {
    const url = new URL(String(value), location.href);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

const IMAGE_EXT = /\.(png|jpe?g|gif|webp|svg|avif|bmp)$/i;
const TYPES = {
  png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', webp: 'image/webp',
  svg: 'image/svg+xml', avif: 'image/avif', pdf: 'application/pdf', txt: 'text/plain',
  zip: 'application/zip', mp4: 'video/mp4', mp3: 'audio/mpeg',
};

/** A media type guessed from a URL's file extension ('' if unknown). */
export function guessType(url) {
  const ext = (url.split(/[?#]/)[0].split('.').pop() || '').toLowerCase();
  return TYPES[ext] || '';
}

export function isImage(attachment) {
  return (attachment.type || '').startsWith('image/') || IMAGE_EXT.test((attachment.url || '').split(/[?#]/)[0]);
}

/** The last path segment of a URL, decoded: the default attachment name. */
export function fileName(url) {
  try {
    const last = new URL(url).pathname.split('/').filter(Boolean).pop() || url;
    return decodeURIComponent(last);
  } catch {
    return url;
  }
}

/**
 * The other user of a direct room `dm~{a}~{b}` (the names sorted, bytes outside
 * `A-Za-z0-9._-@` written %XX by the server).
 */
export function directPeer(roomId, me) {
  const parts = roomId.split('~');
  if (parts.length !== 3 || parts[0] !== 'dm') return null;
  const decode = (s) => {
    try { return decodeURIComponent(s); } catch { return s; }
  };
  const [a, b] = [decode(parts[1]), decode(parts[2])];
  return a === me ? b : a;
}

/** Initials for an avatar, and a stable hue per name. */
export function avatarFor(name) {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return { letters: (name.trim()[0] || '?').toUpperCase(), hue: hash % 360 };
}

export function avatar(name, extra = '') {
  const { letters, hue } = avatarFor(name);
  return el('span', { class: `avatar ${extra}`, style: `--hue:${hue}`, title: name, 'aria-hidden': 'true' }, letters);
}
