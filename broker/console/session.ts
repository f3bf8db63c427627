/**
 * Who is looking at the console: the token of an `Authorization: Bearer` header (scripts are logged in already)
 * or of the session cookie the login page sets. The cookie holds the token itself, HttpOnly and SameSite=Strict:
 * page scripts cannot read it and other sites cannot send it; the console changes nothing but the session.
 */
import type { Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { bearerToken, type Principal, type TokenStore } from '../tokens.ts';

export const SESSION_COOKIE = 'gpubroker_session';

export interface Session {
  readonly token: string;
  readonly principal: Principal;
}

/** The request's token: the bearer header's, else the session cookie's. */
export function tokenOf(c: Context): string | undefined {
  const bearer = bearerToken(c.req.header('authorization'));
  return bearer ?? getCookie(c, SESSION_COOKIE);
}

export async function sessionOf(c: Context, tokens: TokenStore): Promise<Session | undefined> {
  const token = tokenOf(c);
  if (!token) return undefined;
  const principal = await tokens.authenticate(token);
  return principal ? { token, principal } : undefined;
}

export function startSession(c: Context, token: string): void {
  setCookie(c, SESSION_COOKIE, token, {
    httpOnly: true,
    sameSite: 'Strict',
    path: '/',
    secure: new URL(c.req.url).protocol === 'https:',
  });
}

export function endSession(c: Context): void {
  deleteCookie(c, SESSION_COOKIE, { path: '/' });
}

/** A path to return to after logging in: this console's own pages only (never `//host` or a full URL). */
export function safeNext(next: string | undefined): string {
  return next && /^\/(?![/\\])[\w\-/.?=&%]*$/.test(next) ? next : '/';
}
