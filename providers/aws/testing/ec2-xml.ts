/**
 * EC2's XML answers. A success is `<ActionResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">` with a
 * `requestId` and the action's fields; every list is an element holding `<item>` children (`<instancesSet><item>`).
 * An error is `<Response><Errors><Error><Code>…</Code><Message>…</Message></Error></Errors><RequestID>…</RequestID>`
 * (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html#api-error-response).
 */
export const EC2_NAMESPACE = 'http://ec2.amazonaws.com/doc/2016-11-15/';

/** A response body as data: objects are elements, arrays are `<item>` lists, undefined fields are left out. */
export type XmlValue = string | number | boolean | Date | undefined | readonly XmlValue[] | XmlObject;
export interface XmlObject {
  readonly [element: string]: XmlValue;
}

export function successXml(action: string, requestId: string, body: XmlObject): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${EC2_NAMESPACE}">${element(
    'requestId',
    requestId,
  )}${fields(body)}</${action}Response>`;
}

export function errorXml(code: string, message: string, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>${element('Code', code)}${element(
    'Message',
    message,
  )}</Error></Errors>${element('RequestID', requestId)}</Response>`;
}

function fields(object: XmlObject): string {
  return Object.entries(object)
    .map(([name, value]) => element(name, value))
    .join('');
}

function element(name: string, value: XmlValue): string {
  if (value === undefined) return '';
  if (Array.isArray(value))
    return `<${name}>${value.map((item) => element('item', item)).join('')}</${name}>`;
  if (value instanceof Date) return `<${name}>${value.toISOString()}</${name}>`;
  if (typeof value === 'object') return `<${name}>${fields(value as XmlObject)}</${name}>`;
  return `<${name}>${escapeText(String(value))}</${name}>`;
}

const ENTITIES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
};

function escapeText(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c);
}
