/** The claims of a possync device token that the client reads (it never verifies the signature). */
export interface TokenClaims {
  restaurant_id?: string;
  device_id?: string;
  role?: string;
  /** expiry, seconds since epoch */
  exp?: number;
  /** issue time, seconds since epoch */
  iat?: number;
}

function base64UrlDecode(part: string): string {
  let b64 = part.replace(/-/g, '+').replace(/_/g, '/');
  while (b64.length % 4 !== 0) b64 += '=';
  const binary = atob(b64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}

/** The payload of a JWT, or null if the token is not a readable JWT. */
export function decodeTokenClaims(token: string): TokenClaims | null {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return null;
  try {
    const payload = JSON.parse(base64UrlDecode(parts[1])) as unknown;
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return null;
    return payload as TokenClaims;
  } catch {
    return null;
  }
}
