// Reject recipients listed in the plugin's config with a custom `550 5.7.1` text.
//
// The JavaScript twin of examples/policy-rust. Bind it in plugins.toml:
//
//   [[plugin]]
//   name = "reject-listed"
//   component = "policy_js.wasm"
//   [plugin.config]
//   reject = "a@example.com, b@example.com"
//   text = "this recipient does not accept mail"
//
// and in main.cf: `smtpd_recipient_restrictions = check_policy_service wasm:reject-listed, …`.
//
// Imports are the WIT interfaces of ../../wit (world `policy-plugin`), named
// `<package>/<interface>@<version>`; componentize-js wires them to the host when it builds the
// component. The world's export `policy` is the object of the same name exported below.

import { get as configGet } from 'postern:plugin/config@0.1.0';
import { log } from 'postern:plugin/logging@0.1.0';

const DEFAULT_TEXT = 'Recipient refused by policy';

/** The addresses of a `reject` setting, lower-cased: commas and spaces both separate. */
function listed(setting) {
  return new Set(
    (setting ?? '')
      .split(/[\s,]+/)
      .filter((a) => a !== '')
      .map((a) => a.toLowerCase()),
  );
}

/** No opinion: the next restriction in the list decides. WIT variants are `{ tag, val }`. */
const dunno = () => ({ decision: { tag: 'dunno' }, actions: [] });

export const policy = {
  /**
   * `check: func(request: policy-request) -> result<verdict, plugin-error>`.
   * Record fields arrive in camelCase; `option<T>` is the value or `undefined`. Returning a
   * verdict is `ok`; throwing `{ tag: 'temporary', val: 'why' }` (a `plugin-error`) is `err`.
   * The host makes a fresh instance for every call, so nothing is cached between calls.
   */
  check(request) {
    const rcpt = request.recipient; // option<envelope-address>: only at RCPT (and 1-rcpt DATA)
    if (rcpt === undefined || rcpt === null) {
      return dunno();
    }
    // config.get returns option<string>: a string or undefined.
    if (!listed(configGet('reject')).has(rcpt.address.toLowerCase())) {
      return dunno();
    }
    const text = configGet('text') || DEFAULT_TEXT;
    // WIT enums are their kebab-case case names as strings.
    log('info', `reject recipient <${rcpt.address}>: listed`);
    return {
      decision: {
        tag: 'reject',
        val: {
          code: 550,
          enhanced: { class: 5, subject: 7, detail: 1 },
          text: [text],
        },
      },
      actions: [],
    };
  },
};
