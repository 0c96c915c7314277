// Copied beside the generated DoranMobile.swift by scripts/bindings.
//
// Every DoranError case carries one value, the message to show (in the user's
// language, as the device wrote it). This makes it the error's `localizedDescription`,
// so `Text(error.localizedDescription)` shows it as it is.

import Foundation

extension DoranError: LocalizedError {
    /// The message to show, as the device wrote it.
    public var message: String {
        let payload = Mirror(reflecting: self).children.first?.value
        if let text = payload as? String {
            return text
        }
        // A labelled payload (`message: String`) reflects as a one-field tuple.
        if let payload, let text = Mirror(reflecting: payload).children.first?.value as? String {
            return text
        }
        return String(describing: self)
    }

    public var errorDescription: String? { message }
}
