// English for every Chinese string of the pages, one file per part of the product.
import COMMON from "/static/lang/en-common.js";
import HEARING from "/static/lang/en-hearing.js";
import TERMINAL from "/static/lang/en-terminal.js";
import STAFF from "/static/lang/en-staff.js";

export default { ...COMMON, ...HEARING, ...TERMINAL, ...STAFF };
