// English for the Chinese strings of this part (one `"中文": "English",` per line).
export default {
};
